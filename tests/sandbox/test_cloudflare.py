"""Cloudflare: the envelope, Workers secrets, Pages variables, deployments, 429 and the block."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
import pytest

from rotator.sandbox import FaultProfile, Sandbox, SeededValue

if TYPE_CHECKING:
    from conftest import SteppingClock

ACCOUNT = "/cloudflare/client/v4/accounts/sandbox-account"
STAGING_SECRETS = f"{ACCOUNT}/workers/scripts/bandofbakers-staging/secrets"
PROJECT = f"{ACCOUNT}/pages/projects/bandofbakers"


@pytest.fixture
def cf(sandbox: Sandbox, seeded: dict[str, SeededValue], client: httpx.Client) -> httpx.Client:
    client.headers["Authorization"] = f"Bearer {sandbox.cloudflare_token}"
    return client


def errors(answer: httpx.Response) -> list[dict[str, Any]]:
    body = answer.json()
    assert body["success"] is False and body["result"] is None
    result: list[dict[str, Any]] = body["errors"]
    return result


def test_other_tokens_and_accounts_get_10000(cf: httpx.Client) -> None:
    forged = cf.get(STAGING_SECRETS, headers={"Authorization": "Bearer forged"})
    assert forged.status_code == 403 and errors(forged)[0]["code"] == 10000
    elsewhere = cf.get(STAGING_SECRETS.replace("sandbox-account", "other-account"))
    assert elsewhere.status_code == 403 and errors(elsewhere)[0]["code"] == 10000


def test_put_secret_answers_name_and_type_only(cf: httpx.Client) -> None:
    put = cf.put(
        STAGING_SECRETS, json={"name": "NEW_SECRET", "text": "s3cr3t", "type": "secret_text"}
    )
    assert put.status_code == 200
    assert put.json() == {
        "success": True,
        "errors": [],
        "messages": [],
        "result": {"name": "NEW_SECRET", "type": "secret_text"},
    }
    listed = cf.get(STAGING_SECRETS).json()["result"]
    assert {"name": "NEW_SECRET", "type": "secret_text"} in listed
    assert "s3cr3t" not in cf.get(STAGING_SECRETS).text
    assert cf.get(f"{STAGING_SECRETS}/NEW_SECRET").json()["result"]["type"] == "secret_text"
    assert cf.delete(f"{STAGING_SECRETS}/NEW_SECRET").json()["success"] is True


def test_missing_script_is_10007(cf: httpx.Client) -> None:
    wrong = STAGING_SECRETS.replace("bandofbakers-staging", "bandofbakers")
    answer = cf.put(wrong, json={"name": "A", "text": "b", "type": "secret_text"})
    assert answer.status_code == 404 and errors(answer)[0]["code"] == 10007


def test_pages_patch_merges_and_never_returns_values(cf: httpx.Client) -> None:
    patch = {
        "deployment_configs": {
            "preview": {
                "env_vars": {
                    "EXTRA": {"type": "plain_text", "value": "visible"},
                    "BANDOFBAKERS_RESEND_API_KEY": {"type": "secret_text", "value": "re_new"},
                }
            }
        }
    }
    patched = cf.patch(PROJECT, json=patch)
    assert patched.status_code == 200
    env_vars = patched.json()["result"]["deployment_configs"]["preview"]["env_vars"]
    assert env_vars["EXTRA"] == {"type": "plain_text", "value": "visible"}
    assert env_vars["BANDOFBAKERS_RESEND_API_KEY"] == {"type": "secret_text", "value": ""}
    assert "GOOGLE_CLIENT_SECRET" in env_vars  # merged per key, not replaced

    cf.patch(PROJECT, json={"deployment_configs": {"preview": {"env_vars": {"EXTRA": None}}}})
    fetched = cf.get(PROJECT).json()["result"]["deployment_configs"]
    assert "EXTRA" not in fetched["preview"]["env_vars"]
    assert "re_new" not in cf.get(PROJECT).text
    assert set(fetched["production"]["env_vars"]) == {
        "BANDOFBAKERS_RESEND_API_KEY",
        "BANDOFBAKERS_STRIPE_SECRET_KEY",
        "BANDOFBAKERS_GCP_IDENTITY_PLATFORM_API_KEY",
        "GOOGLE_CLIENT_SECRET",
    }
    bad = cf.patch(PROJECT, json={"deployment_configs": {"preview": {"env_vars": {"X": 1}}}})
    assert bad.status_code == 400
    missing = cf.get(PROJECT.replace("bandofbakers", "nope"))
    assert missing.status_code == 404 and errors(missing)[0]["code"] == 8000007


def latest(cf: httpx.Client, env: str) -> dict[str, Any]:
    listed = cf.get(f"{PROJECT}/deployments", params={"env": env}).json()
    assert listed["result_info"]["total_count"] >= 1
    result: dict[str, Any] = listed["result"][0]
    assert result["environment"] == env
    return result


def poll_until_finished(cf: httpx.Client, deployment_id: str) -> list[tuple[str, str]]:
    seen = []
    for _ in range(10):
        stage = cf.get(f"{PROJECT}/deployments/{deployment_id}").json()["result"]["latest_stage"]
        seen.append((stage["name"], stage["status"]))
        if stage["name"] == "deploy" and stage["status"] in ("success", "failure"):
            break
    return seen


def test_retry_creates_a_deployment_that_moves_through_the_stages(cf: httpx.Client) -> None:
    production = latest(cf, "production")
    assert production["latest_stage"] == {**production["latest_stage"], "status": "success"}
    retried = cf.post(f"{PROJECT}/deployments/{production['id']}/retry", json={})
    assert retried.status_code == 200
    fresh = retried.json()["result"]
    assert fresh["id"] != production["id"] and fresh["environment"] == "production"
    assert fresh["latest_stage"]["name"] == "queued"
    seen = poll_until_finished(cf, fresh["id"])
    assert [name for name, _ in seen] == ["initialize", "clone_repo", "build", "deploy", "deploy"]
    assert seen[-1] == ("deploy", "success")
    assert latest(cf, "production")["id"] == fresh["id"]


def test_failure_profile_fails_the_deploy_stage(sandbox: Sandbox, cf: httpx.Client) -> None:
    sandbox.set_faults("pages-deploy-fails")
    preview = latest(cf, "preview")
    fresh = cf.post(f"{PROJECT}/deployments/{preview['id']}/retry", json={}).json()["result"]
    assert poll_until_finished(cf, fresh["id"])[-1] == ("deploy", "failure")
    stages = cf.get(f"{PROJECT}/deployments/{fresh['id']}").json()["result"]["stages"]
    assert [s["status"] for s in stages] == ["success"] * 4 + ["failure"]


def test_429_carries_retry_after_in_the_envelope(sandbox: Sandbox, cf: httpx.Client) -> None:
    sandbox.set_faults(FaultProfile(share_429=1.0, retry_after=7))
    answer = cf.get(STAGING_SECRETS)
    assert answer.status_code == 429 and answer.headers["retry-after"] == "7"
    assert errors(answer)[0]["code"] == 971


def test_block_answers_429_for_five_minutes_after_a_burst(
    sandbox: Sandbox, cf: httpx.Client, clock: SteppingClock
) -> None:
    sandbox.set_faults(FaultProfile(cloudflare_block=True, cloudflare_burst=3))
    assert cf.get(STAGING_SECRETS).status_code == 200
    assert cf.get(STAGING_SECRETS).status_code == 200
    tripped = cf.get(STAGING_SECRETS)
    assert tripped.status_code == 429 and tripped.headers["retry-after"] == "300"
    clock.advance(200)
    still = cf.get(PROJECT)
    assert still.status_code == 429 and still.headers["retry-after"] == "100"
    assert cf.get("/env/production/api/health").status_code == 200  # not Cloudflare
    clock.advance(100)
    assert cf.get(STAGING_SECRETS).status_code == 200
    for _ in range(5):
        assert cf.get(STAGING_SECRETS).status_code == 200  # one block per profile switch
