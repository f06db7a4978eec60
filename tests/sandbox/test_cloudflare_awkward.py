"""Cloudflare's awkward parts in the sandbox (issue 13.8): bulk secrets, gradual
deployments (10215), vars clashes (10053), Pages rollbacks, branches and the budget header."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from rotator.sandbox import Sandbox, SeededValue

ACCOUNT = "/cloudflare/client/v4/accounts/sandbox-account"
STAGING = f"{ACCOUNT}/workers/scripts/bandofbakers-staging"
PROJECT = f"{ACCOUNT}/pages/projects/bandofbakers"


@pytest.fixture
def cf(sandbox: Sandbox, seeded: dict[str, SeededValue], client: httpx.Client) -> httpx.Client:
    client.headers["Authorization"] = f"Bearer {sandbox.cloudflare_token}"
    return client


def codes(answer: httpx.Response) -> list[int]:
    body: dict[str, Any] = answer.json()
    assert body["success"] is False
    return [e["code"] for e in body["errors"]]


def test_bulk_secrets_make_one_version_and_merge(cf: httpx.Client, sandbox: Sandbox) -> None:
    script = sandbox.world.cloudflare.scripts["bandofbakers-staging"]
    before, kept = script.version, set(script.secrets)
    body = {
        "secrets": {
            "A": {"name": "A", "type": "secret_text", "text": "1"},
            "B": {"name": "B", "type": "secret_text", "text": "2"},
        }
    }
    answer = cf.patch(f"{STAGING}/secrets-bulk", json=body)
    assert answer.status_code == 200, answer.text
    assert script.version == before + 1
    assert set(script.secrets) == kept | {"A", "B"}
    assert "1" not in answer.text.replace('"A"', "")  # names only, never values
    deleted = cf.patch(f"{STAGING}/secrets-bulk", json={"secrets": {"A": None}})
    assert deleted.status_code == 200 and "A" not in script.secrets


def test_a_gradual_deployment_refuses_every_secret_change_with_10215(
    cf: httpx.Client, sandbox: Sandbox
) -> None:
    script = sandbox.world.cloudflare.scripts["bandofbakers-staging"]
    new = script.start_gradual(sandbox.world.now(), percentage=25)
    put = cf.put(f"{STAGING}/secrets", json={"name": "A", "type": "secret_text", "text": "1"})
    assert put.status_code == 400 and codes(put) == [10215]
    bulk = cf.patch(
        f"{STAGING}/secrets-bulk",
        json={"secrets": {"A": {"name": "A", "type": "secret_text", "text": "1"}}},
    )
    assert codes(bulk) == [10215]
    split = cf.get(f"{STAGING}/deployments").json()["result"]["deployments"][0]["versions"]
    assert {v["version_id"]: v["percentage"] for v in split}[new.id] == 25
    numbers = {
        v["id"]: v["number"] for v in cf.get(f"{STAGING}/versions").json()["result"]["items"]
    }
    assert numbers[new.id] == max(numbers.values())
    done = cf.post(
        f"{STAGING}/deployments",
        json={"strategy": "percentage", "versions": [{"version_id": new.id, "percentage": 100}]},
    )
    assert done.status_code == 200 and script.fully_deployed
    assert (
        cf.put(
            f"{STAGING}/secrets", json={"name": "A", "type": "secret_text", "text": "1"}
        ).status_code
        == 200
    )


def test_a_vars_binding_cannot_become_a_secret(cf: httpx.Client, sandbox: Sandbox) -> None:
    sandbox.world.cloudflare.scripts["bandofbakers-staging"].vars["PLAIN"] = "x"
    put = cf.put(f"{STAGING}/secrets", json={"name": "PLAIN", "type": "secret_text", "text": "1"})
    assert codes(put) == [10053]
    bindings = cf.get(f"{STAGING}/settings").json()["result"]["bindings"]
    assert {"type": "plain_text", "name": "PLAIN", "text": "x"} in bindings


def test_rollback_moves_the_canonical_deployment(cf: httpx.Client, sandbox: Sandbox) -> None:
    project = sandbox.world.cloudflare.projects["bandofbakers"]
    now = sandbox.world.now()
    old = project.live_deployment("production")
    assert old is not None
    newer = project.push("production", "main", "b" * 40, now)
    assert cf.get(PROJECT).json()["result"]["canonical_deployment"]["id"] == newer.id
    rolled = cf.post(f"{PROJECT}/deployments/{old.id}/rollback", json={})
    assert rolled.status_code == 200
    assert cf.get(PROJECT).json()["result"]["canonical_deployment"]["id"] == old.id
    failed = project.push("production", "main", "c" * 40, now, fails=True)
    refused = cf.post(f"{PROJECT}/deployments/{failed.id}/rollback", json={})
    assert refused.status_code == 400


def test_preview_branches_are_served_by_their_own_builds(sandbox: Sandbox, seeded: Any) -> None:
    project = sandbox.world.cloudflare.projects["bandofbakers"]
    now = sandbox.world.now()
    staging = project.live_deployment("preview", "staging")
    project.push("preview", "feature/x", "f" * 40, now)
    project.push("preview", "staging", "e" * 40, now, fails=True)
    assert project.live_deployment("preview", "staging") is staging


def test_answers_carry_the_budget_left(cf: httpx.Client) -> None:
    first = cf.get(f"{STAGING}/secrets").headers["ratelimit"]
    second = cf.get(f"{STAGING}/secrets").headers["ratelimit"]
    left = [int(h.split("r=")[1].split(";")[0]) for h in (first, second)]
    assert left[0] - left[1] == 1 and left[0] < 1200
