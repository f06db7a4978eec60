"""Stripe key checks, keys made and expired through the console, eventual expiry."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest

from rotator.sandbox import Sandbox, SeededValue

if TYPE_CHECKING:
    from conftest import SteppingClock


def auth(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


@pytest.fixture
def key(seeded: dict[str, SeededValue]) -> str:
    return seeded["BANDOFBAKERS_STRIPE_SECRET_KEY"].value


def test_live_key_reads_balance_with_bearer_or_basic(client: httpx.Client, key: str) -> None:
    assert key.startswith("sk_live_")
    balance = client.get("/stripe/v1/balance", headers=auth(key))
    assert balance.status_code == 200
    body = balance.json()
    assert body["object"] == "balance" and body["livemode"] is True
    assert {"available", "pending", "connect_reserved"} <= set(body)
    basic = client.get("/stripe/v1/account", auth=(key, ""))
    assert basic.status_code == 200 and basic.json()["object"] == "account"


def test_unknown_and_missing_keys_are_401(client: httpx.Client) -> None:
    unknown = client.get("/stripe/v1/balance", headers=auth("sk_live_nonsense1234"))
    assert unknown.status_code == 401
    error = unknown.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"] == "Invalid API Key provided: sk_live_****1234"
    missing = client.get("/stripe/v1/balance")
    assert missing.status_code == 401 and "did not provide" in missing.json()["error"]["message"]


def test_restricted_key_without_balance_permission_is_403(client: httpx.Client) -> None:
    made = client.post(
        "/console/stripe/keys", json={"type": "restricted", "live": True, "permissions": []}
    )
    assert made.status_code == 201
    secret = made.json()["secret"]
    assert secret.startswith("rk_live_")
    refused = client.get("/stripe/v1/balance", headers=auth(secret))
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "more_permissions_required"


def test_console_key_works_and_expiry_can_be_eventual(
    client: httpx.Client, clock: SteppingClock, key: str, seeded: dict[str, SeededValue]
) -> None:
    made = client.post("/console/stripe/keys", json={"type": "secret", "live": True}).json()
    assert client.get("/stripe/v1/balance", headers=auth(made["secret"])).status_code == 200
    listed = client.get("/console/stripe/keys").json()["keys"]
    assert len(listed) == 2 and all("secret" not in k for k in listed)

    old = seeded["BANDOFBAKERS_STRIPE_SECRET_KEY"].ref
    expired = client.post(f"/console/stripe/keys/{old}/expire", json={"delay_seconds": 30})
    assert expired.status_code == 200
    assert client.get("/stripe/v1/balance", headers=auth(key)).status_code == 200
    clock.advance(31)
    late = client.get("/stripe/v1/balance", headers=auth(key))
    assert late.status_code == 401
    error = late.json()["error"]
    assert error["code"] == "api_key_expired" and error["message"].startswith("Expired API Key")
    assert client.post("/console/stripe/keys/key_nope/expire").status_code == 404


def test_expiry_delay_comes_from_the_profile_by_default(
    sandbox: Sandbox, client: httpx.Client, clock: SteppingClock, seeded: dict[str, SeededValue]
) -> None:
    sandbox.set_faults("eventual")
    stripe = seeded["BANDOFBAKERS_STRIPE_SECRET_KEY"]
    client.post(f"/console/stripe/keys/{stripe.ref}/expire")
    assert client.get("/stripe/v1/balance", headers=auth(stripe.value)).status_code == 200
    clock.advance(sandbox.faults.stripe_expiry_delay)
    assert client.get("/stripe/v1/balance", headers=auth(stripe.value)).status_code == 401
