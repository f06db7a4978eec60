"""End to end against the sandbox's awkward Cloudflare: branches, rollbacks, gradual rollouts.

Each test is an acceptance scenario of issue 13 (and 18.5): the `rotate` CLI as a
subprocess, over real HTTP, against a sandbox that answers as Cloudflare documents.
"""

from __future__ import annotations

import httpx

from rotator.sandbox.cloudflare import PagesDeployment, PagesProject, WorkersScript
from tests.e2e.conftest import World

RESEND = "BANDOFBAKERS_RESEND_API_KEY"
GCP = "BANDOFBAKERS_GCP_IDENTITY_PLATFORM_API_KEY"
GOOGLE = "GOOGLE_CLIENT_SECRET"


def _project(w: World) -> PagesProject:
    return w.sandbox.world.cloudflare.projects["bandofbakers"]


def _script(w: World, env: str) -> WorkersScript:
    return w.sandbox.world.cloudflare.scripts[f"bandofbakers-{env}"]


def _emergency(w: World, name: str = RESEND) -> tuple[int, str]:
    done = w.rotate("emergency", name, "--reason", "leaked in a CI log", "--yes", actor="sec@e2e")
    return done.returncode, done.stdout + done.stderr


def _new_builds(project: PagesProject, before: set[str]) -> list[PagesDeployment]:
    return [d for d in project.deployments if d.id not in before]


def test_staging_with_three_preview_branches_and_production_after_a_rollback(
    world: World,
) -> None:
    w = world
    w.at("2027-01-12T10:00")
    project = _project(w)
    now = w.sandbox.world.now()
    with w.sandbox.world.lock:
        good_staging = project.push("preview", "staging", "5" * 40, now)
        # Newer builds that must never be rebuilt for staging: a failed staging build,
        # two other preview branches, a skipped build.
        project.push("preview", "staging", "6" * 40, now, fails=True)
        project.push("preview", "feature/checkout", "c" * 40, now)
        project.push("preview", "feature/menu", "d" * 40, now)
        project.push("preview", "staging", "7" * 40, now, skipped=True)
        # Production: a release, then a bad one an operator rolled back from.
        good = project.push("production", "main", "a" * 40, now)
        bad = project.push("production", "main", "b" * 40, now)
        assert project.canonical_id == bad.id
    rolled = httpx.post(
        f"{w.sandbox.base_url}/cloudflare/client/v4/accounts/{w.sandbox.account_id}"
        f"/pages/projects/bandofbakers/deployments/{good.id}/rollback",
        headers={"Authorization": f"Bearer {w.sandbox.cloudflare_token}"},
        json={},
    )
    assert rolled.status_code == 200, rolled.text
    assert project.canonical_id == good.id
    before = {d.id for d in project.deployments}

    code, output = _emergency(w)
    assert code == 0, output

    built = _new_builds(project, before)
    preview = [d for d in built if d.environment == "preview"]
    production = [d for d in built if d.environment == "production"]
    # One rebuild per environment (a rollback publishes again only on failure).
    assert [(d.branch, d.trigger["metadata"]["commit_hash"]) for d in preview] == [
        ("staging", good_staging.trigger["metadata"]["commit_hash"])
    ] * len(preview)
    assert preview, "staging was not rebuilt"
    assert production and all(
        d.trigger["metadata"]["commit_hash"] == "a" * 40 for d in production
    ), [d.trigger for d in production]
    # The live deployments serve the new value; no other branch was touched.
    assert all(d.branch in ("staging", "main") for d in built)
    live = project.live_deployment("production")
    assert live is not None and live.id == production[-1].id
    new_value = _script(w, "production").secrets[RESEND][1]
    assert live.env_vars[RESEND]["value"] == new_value
    staging_live = project.live_deployment("preview", "staging")
    assert staging_live is not None and staging_live.env_vars[RESEND]["value"] == new_value
    assert new_value not in output


def test_a_worker_in_a_gradual_deployment_stops_with_the_command_then_completes(
    world: World,
) -> None:
    w = world
    w.at("2027-01-12T10:00")
    script = _script(w, "production")
    with w.sandbox.world.lock:
        rolling = script.start_gradual(w.sandbox.world.now(), percentage=10)
    before = dict(script.secrets)

    code, output = _emergency(w)
    assert code == 1, output  # the emergency failed (exit 1); the message says why
    assert "gradual deployment" in output and "10215" in output
    command = f"npx wrangler versions deploy {rolling.id}@100% --name bandofbakers-production --yes"
    assert command in output, output
    assert script.secrets == before  # nothing half-applied on the rolling Worker

    # The person finishes the rollout as told (the API call wrangler makes), then resumes.
    finished = httpx.post(
        f"{w.sandbox.base_url}/cloudflare/client/v4/accounts/{w.sandbox.account_id}"
        "/workers/scripts/bandofbakers-production/deployments",
        headers={"Authorization": f"Bearer {w.sandbox.cloudflare_token}"},
        json={
            "strategy": "percentage",
            "versions": [{"version_id": rolling.id, "percentage": 100}],
        },
    )
    assert finished.status_code == 200, finished.text
    resumed = w.rotate("resume", RESEND, actor="sec@e2e")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert script.secrets[RESEND] != before[RESEND]
    assert script.fully_deployed


def test_a_worker_with_a_clashing_vars_binding_names_the_clash(world: World) -> None:
    w = world
    w.at("2027-01-12T10:00")
    script = _script(w, "staging")
    with w.sandbox.world.lock:
        # The app reads the key as a plain variable from wrangler.toml, not as a secret.
        del script.secrets[RESEND]
        script.vars[RESEND] = "re_plain_in_wrangler_toml"

    code, output = _emergency(w)
    assert code == 1, output  # the emergency failed (exit 1); the message says why
    assert f"{RESEND} is a plain variable of the Worker" in output
    assert "wrangler.toml of bandofbakers-staging" in output
    assert RESEND not in sorted(script.secrets)


def test_a_worker_receives_only_the_secrets_it_held(world: World) -> None:
    """Issue 18.5: a rotation never hands a Worker a secret it did not hold before."""
    w = world
    w.at("2027-01-12T10:00")
    script = _script(w, "staging")
    with w.sandbox.world.lock:
        del script.secrets[RESEND]
    code, output = _emergency(w)
    assert code == 0, output
    assert RESEND not in sorted(script.secrets)
    assert RESEND in _script(w, "production").secrets


def test_every_cloudflare_call_is_taken_from_the_budget_in_the_store(world: World) -> None:
    """Issue 13.6: the runner's Cloudflare calls count against the account's window."""
    import json
    import sqlite3

    w = world
    w.at("2027-01-12T10:00")
    code, out = _emergency(w)
    assert code == 0, out
    log = w.rotate("audit", "log", "--type", "call", "--json").stdout
    calls = [json.loads(line)["details"] for line in log.splitlines()]
    cloudflare = [c for c in calls if str(c["service"]).startswith("cloudflare")]
    assert cloudflare
    with sqlite3.connect(w.home / "rotator.db") as db:
        spent, start = db.execute("SELECT spent, window_start FROM cloudflare_budget").fetchone()
    # Taken in batches of 20: at least every call made, at most a batch more.
    assert len(cloudflare) <= spent < len(cloudflare) + 20 * 2, (spent, len(cloudflare))
    assert start.startswith("2027-01-12")


def test_a_spent_cloudflare_share_pauses_the_step_without_counting_a_failure(
    world: World,
) -> None:
    """Issue 13.6: the share is the account's; waiting for it is not a failed attempt."""
    import sqlite3

    w = world
    text = w.inventory.read_text()
    limited = text.replace("[limits.cloudflare]\n", "[limits.cloudflare]\nshare = 3\n")
    w.inventory.write_text(limited)
    w.at("2027-01-01T02:30")
    paused = w.rotate("run")
    assert paused.returncode == 1, paused.stdout + paused.stderr
    assert "is spent" in paused.stdout + paused.stderr
    with sqlite3.connect(w.home / "rotator.db") as db:
        waiting = db.execute(
            "SELECT attempts FROM rotation WHERE last_error LIKE '%is spent%'"
        ).fetchall()
    assert waiting and all(attempts == 0 for (attempts,) in waiting), waiting
    # Five minutes later the window has turned: the steps go on where they paused.
    w.at("2027-01-01T02:36")
    again = w.rotate("run")
    assert "is spent" in again.stdout + again.stderr  # three more, then paused again
    bad = w.inventory.read_text().replace("share = 3", "share = 5000")
    w.inventory.write_text(bad)
    refused = w.rotate("check", "--offline")
    assert refused.returncode == 3 and "limits.cloudflare.share" in refused.stderr
