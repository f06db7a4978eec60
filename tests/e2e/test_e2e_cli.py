"""End to end: the `rotate` CLI as a subprocess against the sandbox over real HTTP."""

from __future__ import annotations

import json

import httpx

from tests.e2e.conftest import World

SHARED = (
    "BANDOFBAKERS_RESEND_API_KEY",
    "BANDOFBAKERS_STRIPE_SECRET_KEY",
    "BANDOFBAKERS_GCP_IDENTITY_PLATFORM_API_KEY",
)
RESEND = "BANDOFBAKERS_RESEND_API_KEY"
GOOGLE = "GOOGLE_CLIENT_SECRET"


def _client_id(w: World, env: str) -> str:
    return str(w.seeded[f"{GOOGLE}@{env}"].options["client_id"])


def _supply_all(w: World) -> None:
    """Answer every operator-assisted generate, and approve what goes to production."""
    value = w.person.create("BANDOFBAKERS_STRIPE_SECRET_KEY", None)
    done = w.rotate("supply", "BANDOFBAKERS_STRIPE_SECRET_KEY", input=value + "\n", actor="ops@e2e")
    assert done.returncode == 0, done.stdout + done.stderr
    assert value not in done.stdout + done.stderr
    for env in ("local", "staging", "production"):
        value = w.person.create(GOOGLE, _client_id(w, env))
        done = w.rotate("supply", GOOGLE, "--env", env, input=value + "\n", actor="ops@e2e")
        assert done.returncode == 0, done.stdout + done.stderr
    for name in SHARED:
        assert w.rotate("approve", name, "--note", "q1", actor="owner@e2e").returncode == 0
    assert w.rotate("approve", GOOGLE, "--env", "production", actor="owner@e2e").returncode == 0


def _production_always_healthy(w: World) -> None:
    history = [h for h in w.sandbox.health_history if h.environment == "production"]
    assert history, "the sandbox recorded no production health"
    assert all(h.ok for h in history), [h for h in history if not h.ok]


def _no_leaks(w: World) -> None:
    text = "\n".join(w.outputs)
    for value in w.issued_values():
        assert value not in text


def test_full_quarterly_cycle_of_all_four_secrets(world: World) -> None:
    w = world
    w.at("2027-01-01T02:30")
    first = w.rotate("run")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "person" in first.stdout  # Stripe and Google wait for a person
    _supply_all(w)
    status = w.status()
    for key, row in status.items():
        assert row["rotations"][0]["state"] == "staged", (key, row["rotations"])

    # Nothing is due before month 2: a run changes nothing and calls no provider. Staging
    # is watched through the soak (issue 15): reading Rollbar and Logflare is that watch.
    def provider_requests() -> dict[str, int]:
        counts = w.sandbox.state()["requests"]
        return {k: v for k, v in counts.items() if "/rollbar/" not in k and "/logflare/" not in k}

    w.at("2027-01-20T02:30")
    before = provider_requests()
    quiet = w.rotate("run")
    assert quiet.returncode == 0 and "summary: " in quiet.stdout
    assert provider_requests() == before

    plan = w.rotate("plan", "--at", "2027-03-10T02:30")
    assert plan.returncode == 0
    assert "promote" in plan.stdout or "validate" in plan.stdout

    w.at("2027-02-01T02:30")
    assert w.rotate("run").returncode == 0
    assert {r["rotations"][0]["state"] for r in w.status().values()} == {"validated"}

    w.at("2027-03-01T02:30")  # a Monday: outside the window (tue-thu)
    assert w.rotate("run").returncode == 0
    assert {r["rotations"][0]["state"] for r in w.status().values()} == {"validated"}
    w.at("2027-03-02T02:30")  # Tuesday, inside the window
    promoted = w.rotate("run")
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    assert {r["rotations"][0]["state"] for r in w.status().values()} == {"promoted"}

    w.at("2027-03-04T02:30")
    assert w.rotate("run").returncode == 0
    w.at("2027-04-01T02:30")
    revoke = w.rotate("run")
    assert revoke.returncode == 0, revoke.stdout + revoke.stderr
    w.person.revoke_old("BANDOFBAKERS_STRIPE_SECRET_KEY", None)
    assert w.rotate("confirm", "BANDOFBAKERS_STRIPE_SECRET_KEY", "--step", "revoke").returncode == 0
    for env in ("local", "staging", "production"):
        w.person.revoke_old(GOOGLE, _client_id(w, env))
        done = w.rotate("confirm", GOOGLE, "--env", env, "--step", "revoke")
        assert done.returncode == 0, done.stdout + done.stderr
    for name in SHARED:
        assert w.rotate("review", name, "--note", "ok", actor="sec@e2e").returncode == 0
    for env in ("local", "staging", "production"):
        assert (
            w.rotate("review", GOOGLE, "--env", env, "--note", "ok", actor="sec@e2e").returncode
            == 0
        )

    shown = json.loads(w.rotate("show", RESEND, "--json").stdout)
    q1 = [r for r in shown["rotations"] if r["cycle"] == "2027-01"]
    assert q1 and q1[0]["state"] == "completed"
    # The Q1 credential that was replaced is revoked; the April cycle has begun beside it.
    live = sorted(v["state"] for v in shown["versions"] if v["state"] != "revoked")
    assert live == ["current", "pending"], shown["versions"]
    state = w.sandbox.state()["credentials"]
    assert state["resend"] == 2 and state["gcp_api_keys"] == 2
    _production_always_healthy(w)
    verified = w.rotate("audit", "verify")
    assert verified.returncode == 0, verified.stdout
    _no_leaks(w)


def test_emergency_rotates_and_revokes_at_once(world: World) -> None:
    w = world
    w.at("2027-01-10T11:00")
    old = w.seeded[RESEND].value
    done = w.rotate(
        "emergency", RESEND, "--reason", "key pasted in a public gist", "--yes", actor="sec@e2e"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "generate" in done.stderr and "promote" in done.stderr  # progress shown as it runs
    refused = httpx.get(
        w.sandbox.base_url + "/resend/api-keys", headers={"Authorization": f"Bearer {old}"}
    )
    assert refused.status_code in (400, 401, 403)
    assert w.sandbox.state()["credentials"]["resend"] == 1
    _production_always_healthy(w)
    log = w.rotate("audit", "log", "--type", "emergency.started", "--json")
    assert "key pasted in a public gist" in log.stdout
    assert w.rotate("audit", "verify").returncode == 0
    _no_leaks(w)


def _to_promoted(w: World) -> None:
    w.at("2027-01-01T02:30")
    w.rotate("run")
    _supply_all(w)
    w.at("2027-02-01T02:30")
    w.rotate("run")
    w.at("2027-03-02T02:30")
    assert w.rotate("run").returncode == 0


def test_rollback_by_a_failing_production_health_check(world: World) -> None:
    w = world
    _to_promoted(w)
    shown = json.loads(w.rotate("show", RESEND, "--json").stdout)
    new_ref = next(v["provider_ref"] for v in shown["versions"] if v["state"] == "current")
    # Someone deletes the new key behind the tool's back: production breaks.
    old = w.seeded[RESEND].value
    gone = httpx.delete(
        f"{w.sandbox.base_url}/resend/api-keys/{new_ref}",
        headers={"Authorization": f"Bearer {old}"},
    )
    assert gone.status_code == 200
    w.at("2027-03-02T14:00")
    done = w.rotate("run")
    assert "rollback" in done.stdout, done.stdout + done.stderr
    shown = json.loads(w.rotate("show", RESEND, "--json").stdout)
    q1 = next(r for r in shown["rotations"] if r["cycle"] == "2027-01")
    assert q1["state"] == "rolled-back", (q1["last_error"], q1["steps"])
    current = [v for v in shown["versions"] if v["state"] == "current"]
    assert current and current[0]["provider_ref"] == w.seeded[RESEND].ref
    last = w.sandbox.health_history[-1]
    assert last.ok, last
    assert w.rotate("audit", "verify").returncode == 0


def test_cloudflare_block_is_waited_out(world: World) -> None:
    w = world
    w.sandbox.set_faults("cloudflare-block")
    w.at("2027-01-01T02:30")
    blocked = w.rotate("run")
    assert blocked.returncode == 1, blocked.stdout + blocked.stderr
    assert "retrying" in blocked.stdout
    w.sandbox.set_faults("none")
    w.at("2027-01-01T03:30")
    done = w.rotate("run")
    assert done.returncode == 0, done.stdout + done.stderr
    assert w.status()[(RESEND, "shared")]["rotations"][0]["state"] == "staged"


def test_failed_pages_deployment_fails_the_step(world: World) -> None:
    w = world
    w.sandbox.set_faults("pages-deploy-fails")
    w.at("2027-01-01T02:30")
    failed = w.rotate("run")
    assert failed.returncode == 1
    assert "failed at stage" in failed.stdout, failed.stdout
    row = w.status()[(RESEND, "shared")]["rotations"][0]
    assert row["state"] == "generated" and row["last_error"]
    w.sandbox.set_faults("none")
    w.at("2027-01-01T04:00")
    assert w.rotate("run").returncode == 0
    assert w.status()[(RESEND, "shared")]["rotations"][0]["state"] == "staged"
