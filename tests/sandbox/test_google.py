"""Google: the token endpoint (JWT bearer, client-secret probe), API Keys v2, Identity Toolkit."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from rotator.sandbox import FaultProfile, Sandbox, SeededValue

if TYPE_CHECKING:
    from conftest import SteppingClock

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
KEYS = "/google/apikeys/v2/projects/bandofbakers-prod/locations/global/keys"
REFERER = {"Referer": "https://bandofbakers.co.uk/login"}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def assertion(key_file: dict[str, str], now: float, *, key: Any = None, **claims: Any) -> str:
    header = {"alg": "RS256", "typ": "JWT", "kid": key_file["private_key_id"]}
    body = {
        "iss": key_file["client_email"],
        "scope": "https://www.googleapis.com/auth/cloud-platform",
        "aud": key_file["token_uri"],
        "iat": int(now),
        "exp": int(now) + 3600,
        **claims,
    }
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(body).encode())}"
    if key is None:
        # Skipping the RSA consistency check saves about 0.1 s a test; the key is ours.
        key = serialization.load_pem_private_key(
            key_file["private_key"].encode(), None, unsafe_skip_rsa_key_validation=True
        )
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64(signature)}"


@pytest.fixture
def key_file(sandbox: Sandbox, tmp_path: Path) -> dict[str, str]:
    path = sandbox.write_service_account_file(tmp_path / "sa.json")
    assert path.stat().st_mode & 0o777 == 0o600
    loaded: dict[str, str] = json.loads(path.read_text())
    return loaded


@pytest.fixture
def token(client: httpx.Client, key_file: dict[str, str], clock: SteppingClock) -> str:
    signed = assertion(key_file, clock().timestamp())
    answer = client.post(
        "/google/oauth2/token", data={"grant_type": JWT_BEARER, "assertion": signed}
    )
    assert answer.status_code == 200
    return str(answer.json()["access_token"])


def test_key_file_points_at_the_sandbox(sandbox: Sandbox, key_file: dict[str, str]) -> None:
    assert key_file["type"] == "service_account"
    assert key_file["token_uri"] == sandbox.base_url + "/google/oauth2/token"
    assert key_file["private_key"].startswith("-----BEGIN PRIVATE KEY-----")


def test_correctly_signed_assertion_gets_an_access_token(
    client: httpx.Client, key_file: dict[str, str], clock: SteppingClock
) -> None:
    signed = assertion(key_file, clock().timestamp())
    answer = client.post(
        "/google/oauth2/token", data={"grant_type": JWT_BEARER, "assertion": signed}
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3599
    assert body["access_token"].startswith("ya29.")


@pytest.mark.parametrize(
    ("change", "description"),
    [
        ({"key": "other"}, "Invalid JWT Signature."),
        ({"iss": "someone@else.iam.gserviceaccount.com"}, "Invalid grant: account not found"),
        ({"aud": "https://example.com/token"}, "Invalid JWT: Failed audience check"),
        ({"exp_offset": 7200}, "Invalid JWT: Token must be a short-lived token"),
        ({"iat_offset": -7200}, "Invalid JWT: Token must be a short-lived token"),
    ],
)
def test_bad_assertions_are_invalid_grant(
    client: httpx.Client,
    key_file: dict[str, str],
    clock: SteppingClock,
    change: dict[str, Any],
    description: str,
) -> None:
    now = clock().timestamp()
    claims: dict[str, Any] = {k: v for k, v in change.items() if k in ("iss", "aud")}
    key = None
    if change.get("key") == "other":
        key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    if "exp_offset" in change:
        claims["exp"] = int(now) + change["exp_offset"]
    if "iat_offset" in change:
        claims["iat"] = int(now) + change["iat_offset"]
        claims["exp"] = claims["iat"] + 3600
    signed = assertion(key_file, now, key=key, **claims)
    answer = client.post(
        "/google/oauth2/token", data={"grant_type": JWT_BEARER, "assertion": signed}
    )
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_grant"
    assert answer.json()["error_description"].startswith(description)


def test_client_secret_probe(client: httpx.Client, seeded: dict[str, SeededValue]) -> None:
    staging = seeded["GOOGLE_CLIENT_SECRET@staging"]
    client_id = staging.options["client_id"]
    probe = {
        "grant_type": "authorization_code",
        "code": "invalid-probe",
        "client_id": client_id,
        "client_secret": staging.value,
        "redirect_uri": "https://staging.bandofbakers.co.uk/api/auth/callback/google",
    }
    right = client.post("/google/oauth2/token", data=probe)
    assert right.status_code == 400
    assert right.json() == {"error": "invalid_grant", "error_description": "Malformed auth code."}

    wrong = client.post("/google/oauth2/token", data={**probe, "client_secret": "GOCSPX-no"})
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"

    other_env = seeded["GOOGLE_CLIENT_SECRET@production"].value
    crossed = client.post("/google/oauth2/token", data={**probe, "client_secret": other_env})
    assert crossed.status_code == 401

    unknown = client.post("/google/oauth2/token", data={**probe, "client_id": "nope"})
    assert unknown.status_code == 401
    assert unknown.json()["error_description"] == "The OAuth client was not found."

    basic = {k: v for k, v in probe.items() if k not in ("client_id", "client_secret")}
    by_basic = client.post("/google/oauth2/token", data=basic, auth=(client_id, staging.value))
    assert by_basic.status_code == 400 and by_basic.json()["error"] == "invalid_grant"


def test_api_keys_need_an_access_token(client: httpx.Client) -> None:
    answer = client.get(KEYS, headers={"Authorization": "Bearer ya29.forged"})
    assert answer.status_code == 401
    assert answer.json()["error"]["status"] == "UNAUTHENTICATED"


def test_create_key_is_a_long_running_operation(
    sandbox: Sandbox, client: httpx.Client, token: str, seeded: dict[str, SeededValue]
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    body = {
        "displayName": "idp-web-2026-01",
        "restrictions": {
            "browserKeyRestrictions": {"allowedReferrers": ["https://bandofbakers.co.uk/*"]},
            "apiTargets": [
                {"service": "identitytoolkit.googleapis.com"},
                {"service": "securetoken.googleapis.com"},
            ],
        },
    }
    started = client.post(KEYS, params={"keyId": "idp-web-2026-01"}, json=body, headers=headers)
    assert started.status_code == 200
    operation = started.json()
    assert operation["name"].startswith("operations/") and operation["done"] is False

    polled = client.get(f"/google/apikeys/v2/{operation['name']}", headers=headers).json()
    assert polled["done"] is True
    created = polled["response"]
    assert created["@type"] == "type.googleapis.com/google.api.apikeys.v2.Key"
    assert created["name"].endswith("/locations/global/keys/idp-web-2026-01")
    key_string = created["keyString"]
    assert key_string.startswith("AIza")

    duplicate = client.post(KEYS, params={"keyId": "idp-web-2026-01"}, json=body, headers=headers)
    assert duplicate.status_code == 409
    assert duplicate.json()["error"]["status"] == "ALREADY_EXISTS"

    fetched = client.get(f"{KEYS}/idp-web-2026-01", headers=headers).json()
    assert "keyString" not in fetched and fetched["displayName"] == "idp-web-2026-01"
    shown = client.get(f"{KEYS}/idp-web-2026-01/keyString", headers=headers).json()
    assert shown == {"keyString": key_string}
    listed = client.get(KEYS, headers=headers).json()["keys"]
    assert {k["name"].rsplit("/", 1)[1] for k in listed} == {"idp-web-initial", "idp-web-2026-01"}
    assert all("keyString" not in k for k in listed)

    valid = client.get(
        "/google/identitytoolkit/v1/projects", params={"key": key_string}, headers=REFERER
    )
    assert valid.status_code == 200 and valid.json()["projectId"] == "bandofbakers-prod"


def test_bad_key_ids_and_unknown_projects(client: httpx.Client, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    bad_id = client.post(KEYS, params={"keyId": "Not_Valid"}, json={}, headers=headers)
    assert bad_id.status_code == 400 and bad_id.json()["error"]["status"] == "INVALID_ARGUMENT"
    other = KEYS.replace("bandofbakers-prod", "someone-else")
    assert client.get(other, headers=headers).status_code == 403
    missing = client.get(f"{KEYS}/nope", headers=headers)
    assert missing.status_code == 404 and missing.json()["error"]["status"] == "NOT_FOUND"


def test_delete_is_soft_and_undelete_restores(
    client: httpx.Client, token: str, seeded: dict[str, SeededValue]
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    value = seeded["BANDOFBAKERS_GCP_IDENTITY_PLATFORM_API_KEY"].value
    params = {"key": value}
    deleted = client.delete(f"{KEYS}/idp-web-initial", headers=headers).json()
    assert deleted["name"].startswith("operations/")
    done = client.get(f"/google/apikeys/v2/{deleted['name']}", headers=headers).json()
    assert done["done"] and "deleteTime" in done["response"]

    refused = client.get("/google/identitytoolkit/v1/projects", params=params, headers=REFERER)
    assert refused.status_code == 400
    assert refused.json()["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    assert client.get(KEYS, headers=headers).json()["keys"] == []
    shown = client.get(KEYS, params={"showDeleted": "true"}, headers=headers).json()["keys"]
    assert [k["name"].rsplit("/", 1)[1] for k in shown] == ["idp-web-initial"]

    client.post(f"{KEYS}/idp-web-initial:undelete", json={}, headers=headers)
    back = client.get("/google/identitytoolkit/v1/projects", params=params, headers=REFERER)
    assert back.status_code == 200
    again = client.post(f"{KEYS}/idp-web-initial:undelete", json={}, headers=headers)
    assert again.status_code == 400 and again.json()["error"]["status"] == "FAILED_PRECONDITION"


def test_identitytoolkit_checks_the_referrer(
    client: httpx.Client, seeded: dict[str, SeededValue]
) -> None:
    value = seeded["BANDOFBAKERS_GCP_IDENTITY_PLATFORM_API_KEY"].value
    blocked = client.get("/google/identitytoolkit/v1/projects", params={"key": value})
    assert blocked.status_code == 403
    assert blocked.json()["error"]["details"][0]["reason"] == "API_KEY_HTTP_REFERRER_BLOCKED"
    bogus = client.get("/google/identitytoolkit/v1/projects", params={"key": "AIzaNope"})
    assert bogus.status_code == 400


def test_slow_lro_finishes_after_polls_and_time(
    sandbox: Sandbox, client: httpx.Client, token: str, clock: SteppingClock
) -> None:
    sandbox.set_faults("slow-lro")
    headers = {"Authorization": f"Bearer {token}"}
    operation = client.post(KEYS, params={"keyId": "slow"}, json={}, headers=headers).json()
    poll = f"/google/apikeys/v2/{operation['name']}"
    for _ in range(sandbox.faults.lro_polls):
        assert client.get(poll, headers=headers).json()["done"] is False
    clock.advance(sandbox.faults.lro_seconds)
    assert client.get(poll, headers=headers).json()["done"] is True


def test_new_key_is_refused_until_it_has_propagated(
    sandbox: Sandbox, client: httpx.Client, token: str, clock: SteppingClock
) -> None:
    sandbox.set_faults(FaultProfile(lro_polls=0, key_propagation_delay=60))
    headers = {"Authorization": f"Bearer {token}"}
    operation = client.post(KEYS, params={"keyId": "fresh"}, json={}, headers=headers).json()
    assert operation["done"] is True
    params = {"key": operation["response"]["keyString"]}
    early = client.get("/google/identitytoolkit/v1/projects", params=params)
    assert early.status_code == 400
    clock.advance(60)
    assert client.get("/google/identitytoolkit/v1/projects", params=params).status_code == 200


def test_access_tokens_expire(client: httpx.Client, token: str, clock: SteppingClock) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get(KEYS, headers=headers).status_code == 200
    clock.advance(3600)
    assert client.get(KEYS, headers=headers).status_code == 401
