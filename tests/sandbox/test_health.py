"""Health endpoints follow what is deployed and accepted; the history proves it afterwards."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest

from rotator.sandbox import Sandbox, SeededValue

if TYPE_CHECKING:
    from conftest import SteppingClock

ACCOUNT = "/cloudflare/client/v4/accounts/sandbox-account"
PROJECT = f"{ACCOUNT}/pages/projects/bandofbakers"
RESEND = "BANDOFBAKERS_RESEND_API_KEY"


@pytest.fixture
def resend_key(seeded: dict[str, SeededValue]) -> SeededValue:
    return seeded[RESEND]


def test_both_environments_start_healthy(client: httpx.Client, seeded: object) -> None:
    for env in ("staging", "production"):
        answer = client.get(f"/env/{env}/api/health")
        assert answer.status_code == 200 and answer.json() == {"ok": True}
    assert client.get("/env/nowhere/api/health").status_code == 404


def redeploy(client: httpx.Client, config: str) -> str:
    listed = client.get(f"{PROJECT}/deployments", params={"env": config}).json()["result"]
    fresh = client.post(f"{PROJECT}/deployments/{listed[0]['id']}/retry", json={}).json()
    deployment_id: str = fresh["result"]["id"]
    for _ in range(5):
        client.get(f"{PROJECT}/deployments/{deployment_id}")
    return deployment_id


def test_revoking_a_deployed_value_fails_health_until_a_new_one_is_deployed(
    sandbox: Sandbox, client: httpx.Client, resend_key: SeededValue
) -> None:
    auth = {"Authorization": f"Bearer {resend_key.value}"}
    new = client.post("/resend/api-keys", json={"name": "rot-2"}, headers=auth).json()
    new_auth = {"Authorization": f"Bearer {new['token']}"}
    client.delete(f"/resend/api-keys/{resend_key.ref}", headers=new_auth)

    broken = client.get("/env/production/api/health")
    assert broken.status_code == 503
    assert broken.json() == {"ok": False, "failing": [RESEND]}

    client.headers["Authorization"] = f"Bearer {sandbox.cloudflare_token}"
    for env, script, config in (
        ("staging", "bandofbakers-staging", "preview"),
        ("production", "bandofbakers-production", "production"),
    ):
        client.put(
            f"{ACCOUNT}/workers/scripts/{script}/secrets",
            json={"name": RESEND, "text": new["token"], "type": "secret_text"},
        )
        assert client.get(f"/env/{env}/api/health").status_code == 503  # Pages still old
        var = {"type": "secret_text", "value": new["token"]}
        client.patch(PROJECT, json={"deployment_configs": {config: {"env_vars": {RESEND: var}}}})
        assert client.get(f"/env/{env}/api/health").status_code == 503  # not redeployed yet
        redeploy(client, config)
        assert client.get(f"/env/{env}/api/health").status_code == 200

    history = client.get("/sandbox/health-history").json()["history"]
    production = [r for r in history if r["env"] == "production"]
    assert production[0]["ok"] is True and production[0]["cause"] == "seed"
    assert any(not r["ok"] and r["failing"] == [RESEND] for r in production)
    assert production[-1]["ok"] is True
    assert any(r["cause"] == "DELETE /resend/api-keys/{key_id}" for r in production)


def test_a_failed_deployment_leaves_the_previous_values_serving(
    sandbox: Sandbox, client: httpx.Client, seeded: dict[str, SeededValue]
) -> None:
    client.headers["Authorization"] = f"Bearer {sandbox.cloudflare_token}"
    bogus = {"type": "secret_text", "value": "re_not_a_key"}
    client.patch(PROJECT, json={"deployment_configs": {"preview": {"env_vars": {RESEND: bogus}}}})
    sandbox.set_faults("pages-deploy-fails")
    redeploy(client, "preview")
    assert client.get("/env/staging/api/health").status_code == 200
    sandbox.set_faults("none")
    redeploy(client, "preview")
    assert client.get("/env/staging/api/health").json() == {"ok": False, "failing": [RESEND]}


def test_oauth_secret_counts_only_for_its_own_environment(
    sandbox: Sandbox, client: httpx.Client, seeded: dict[str, SeededValue]
) -> None:
    client.headers["Authorization"] = f"Bearer {sandbox.cloudflare_token}"
    staging_secret = seeded["GOOGLE_CLIENT_SECRET@staging"].value
    client.put(
        f"{ACCOUNT}/workers/scripts/bandofbakers-production/secrets",
        json={"name": "GOOGLE_CLIENT_SECRET", "text": staging_secret, "type": "secret_text"},
    )
    answer = client.get("/env/production/api/health")
    assert answer.json() == {"ok": False, "failing": ["GOOGLE_CLIENT_SECRET"]}


def test_eventual_expiry_is_recorded_when_first_noticed(
    sandbox: Sandbox, client: httpx.Client, clock: SteppingClock, seeded: dict[str, SeededValue]
) -> None:
    stripe = seeded["BANDOFBAKERS_STRIPE_SECRET_KEY"]
    client.post(f"/console/stripe/keys/{stripe.ref}/expire", json={"delay_seconds": 60})
    assert sandbox.health_history[-1].ok
    clock.advance(61)
    last = sandbox.health_history[-1]
    assert not last.ok and last.cause == "observed"
    assert last.failing == ("BANDOFBAKERS_STRIPE_SECRET_KEY",)
