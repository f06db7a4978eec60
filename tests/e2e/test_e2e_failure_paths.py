"""The bad days: each reproduction of the failure-paths issues, end to end over real HTTP.

Every test drives the `rotate` CLI as a subprocess against the sandbox and reads what the
sandbox itself serves and accepts, so "production serves X" is the sandbox's answer, not
the tool's own bookkeeping.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from rotator.sandbox.environments import deployed_secrets
from tests.e2e.conftest import World

RESEND = "BANDOFBAKERS_RESEND_API_KEY"
STRIPE = "BANDOFBAKERS_STRIPE_SECRET_KEY"
GCP = "BANDOFBAKERS_GCP_IDENTITY_PLATFORM_API_KEY"
GOOGLE = "GOOGLE_CLIENT_SECRET"


def _served(w: World, env: str, variable: str) -> set[str]:
    """Every value of `variable` the environment's Worker and live Pages build hold."""
    binding = w.sandbox.world.environments[env]
    return {value for name, value in deployed_secrets(w.sandbox.world, binding) if name == variable}


def _break(w: World, env: str) -> None:
    """Make `env` unhealthy for a reason that has nothing to do with the rotation."""
    script = w.sandbox.world.cloudflare.scripts[f"bandofbakers-{env}"]
    script.secrets["UNRELATED_BROKEN_SETTING"] = ("secret_text", "not-a-credential")


def _mend(w: World, env: str) -> None:
    script = w.sandbox.world.cloudflare.scripts[f"bandofbakers-{env}"]
    script.secrets.pop("UNRELATED_BROKEN_SETTING", None)


def _resend_accepts(w: World, value: str) -> bool:
    return bool(w.sandbox.world.resend.accepts(value))


def _show(w: World, name: str, *env: str) -> dict[str, object]:
    done = w.rotate("show", name, *env, "--json")
    assert done.returncode == 0, done.stderr
    loaded: dict[str, object] = json.loads(done.stdout)
    return loaded


def _rotation(w: World, name: str, kind: str, *env: str) -> dict[str, object]:
    shown = _show(w, name, *env)
    rotations = [r for r in shown["rotations"] if r["kind"] == kind]  # type: ignore[attr-defined,index]
    assert rotations, shown
    found: dict[str, object] = rotations[-1]
    return found


# ---------------------------------------------------------------------------- issue 12.1
def test_emergency_with_production_failing_never_ends_done(world: World) -> None:
    """Production already broken: the emergency restores service, fails, says why; a re-run
    after the fix resumes it and completes."""
    w = world
    w.at("2027-01-10T11:00")
    old = w.seeded[RESEND].value
    _break(w, "production")
    done = w.rotate("emergency", RESEND, "--reason", "key in a gist", "--yes", actor="sec@e2e")
    out = done.stdout + done.stderr
    assert done.returncode == 1, out
    assert "already unhealthy before the emergency" in out
    assert "COMPROMISED" in out and "rotate resume" in out
    assert "summary: 1 done" not in out
    rotation = _rotation(w, RESEND, "emergency")
    assert rotation["state"] == "failed"
    # Service restored everywhere, production first: the compromised key serves again,
    # it is still live (nothing served was revoked), and the new key was kept.
    assert _served(w, "production", RESEND) == {old}
    assert _served(w, "staging", RESEND) == {old}
    assert _resend_accepts(w, old)
    status = w.status()[(RESEND, "shared")]["rotations"][0]
    assert status["needs_person"] and status["serves_compromised"]
    assert "already failing before the emergency" in status["instruction"]
    shown = w.rotate("status")
    assert "EMERGENCY NOT FINISHED" in shown.stdout
    # Each later run neither breaks nor "finishes" anything.
    assert w.rotate("run").returncode != 0 or _rotation(w, RESEND, "emergency")["state"] == "failed"
    assert _served(w, "production", RESEND) == {old}

    # The person fixes production and runs the same command again: it resumes.
    _mend(w, "production")
    again = w.rotate("emergency", RESEND, "--reason", "key in a gist", "--yes", actor="sec@e2e")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "resuming the emergency" in again.stderr
    assert _rotation(w, RESEND, "emergency")["state"] == "completed"
    assert not _resend_accepts(w, old)
    (new,) = _served(w, "production", RESEND)
    assert new != old and _resend_accepts(w, new)
    assert w.sandbox.state()["credentials"]["resend"] == 1
    assert w.rotate("audit", "verify").returncode == 0


# ---------------------------------------------------------------------------- issue 12.2
def test_supply_refuses_the_compromised_value(world: World) -> None:
    w = world
    w.at("2027-01-10T11:00")
    started = w.rotate("emergency", STRIPE, "--reason", "key leaked", "--yes", actor="sec@e2e")
    assert "person" in started.stdout, started.stdout + started.stderr
    compromised = w.seeded[STRIPE].value
    refused = w.rotate("supply", STRIPE, input=compromised + "\n", actor="ops@e2e")
    assert refused.returncode == 4, refused.stdout + refused.stderr
    assert "compromised" in refused.stderr and "NEW credential" in refused.stderr
    assert compromised not in refused.stdout + refused.stderr
    assert _rotation(w, STRIPE, "emergency")["state"] == "awaiting-supply"


def test_supply_refuses_another_environments_value(world: World) -> None:
    w = world
    w.at("2027-01-10T11:00")
    started = w.rotate(
        "emergency", GOOGLE, "--env", "staging", "--reason", "leak", "--yes", actor="sec@e2e"
    )
    assert "person" in started.stdout, started.stdout + started.stderr
    production_value = w.seeded[f"{GOOGLE}@production"].value
    refused = w.rotate(
        "supply", GOOGLE, "--env", "staging", input=production_value + "\n", actor="ops@e2e"
    )
    assert refused.returncode == 4, refused.stdout + refused.stderr
    assert "of production" in refused.stderr


# ---------------------------------------------------------------------------- issue 12.3
def _client_id(w: World, env: str) -> str:
    return str(w.seeded[f"{GOOGLE}@{env}"].options["client_id"])


def test_rollback_of_an_operator_assisted_rotation_asks_to_delete_the_new_one(
    world: World,
) -> None:
    """After a rollback the person is asked to delete the NEW credential, which no target
    serves any more, and `confirm` checks exactly that one."""
    w = world
    w.at("2027-01-01T02:30")
    w.rotate("run")
    value = w.person.create(STRIPE, None)
    assert w.rotate("supply", STRIPE, input=value + "\n", actor="ops@e2e").returncode == 0
    assert w.rotate("approve", STRIPE, "--note", "q1", actor="owner@e2e").returncode == 0
    w.at("2027-02-01T02:30")
    w.rotate("run")
    w.at("2027-03-02T02:30")
    w.rotate("run")
    assert _rotation(w, STRIPE, "quarterly")["state"] == "promoted"
    assert _served(w, "production", STRIPE) == {value}
    back = w.rotate("rollback", STRIPE, "--reason", "refunds fail", actor="ops@e2e")
    assert back.returncode == 0, back.stdout + back.stderr
    old = w.seeded[STRIPE].value
    assert _served(w, "production", STRIPE) == {old}
    assert _served(w, "staging", STRIPE) == {old}
    rotation = _rotation(w, STRIPE, "quarterly")
    assert rotation["state"] == "awaiting-discard"
    assert "Delete the NEW credential" in str(rotation["instruction"])
    # Confirming before the person deleted it is refused: Stripe still accepts it.
    early = w.rotate("confirm", STRIPE, "--step", "revoke")
    assert early.returncode == 4
    # The person expires the new key (the newest one), as the instruction says.
    w.person._post(f"/console/stripe/keys/{w.person.stripe_keys[-1]}/expire", {})
    done = w.rotate("confirm", STRIPE, "--step", "revoke")
    assert done.returncode == 0, done.stdout + done.stderr
    assert _rotation(w, STRIPE, "quarterly")["state"] == "rolled-back"
    assert w.sandbox.world.stripe.accepts(old, w.sandbox.world.now())


def test_operator_assisted_emergency_rolled_back_asks_for_no_deletion(world: World) -> None:
    w = world
    w.at("2027-01-10T11:00")
    _break(w, "production")
    w.rotate("emergency", STRIPE, "--reason", "leak", "--yes", actor="sec@e2e")
    value = w.person.create(STRIPE, None)
    done = w.rotate("supply", STRIPE, input=value + "\n", actor="ops@e2e")
    assert done.returncode == 1, done.stdout + done.stderr
    rotation = _rotation(w, STRIPE, "emergency")
    assert rotation["state"] == "failed"
    text = str(rotation["instruction"])
    assert "rotate resume" in text and "Delete" not in text
    assert w.rotate("confirm", STRIPE, "--step", "revoke").returncode == 4
    assert _served(w, "production", STRIPE) == {w.seeded[STRIPE].value}
    _mend(w, "production")
    resumed = w.rotate("resume", STRIPE)
    assert "person" in resumed.stdout, resumed.stdout + resumed.stderr  # revoke the old one
    w.person.revoke_old(STRIPE, None)
    assert w.rotate("confirm", STRIPE, "--step", "revoke").returncode == 0
    assert _rotation(w, STRIPE, "emergency")["state"] == "completed"
    assert _served(w, "production", STRIPE) == {value}


# ---------------------------------------------------------------------------- issue 12.4
def _two_emergencies(w: World, extra: dict[str, str]) -> list[subprocess.CompletedProcess[str]]:
    base = {**os.environ, **w.env, **extra, "ROTATOR_FAKE_TIME": w.clock().isoformat()}
    args = [sys.executable, "-m", "rotator", "emergency", RESEND, "--reason", "race", "--yes"]
    procs = [
        subprocess.Popen(
            args,
            env={**base, "ROTATOR_ACTOR": f"sec{i}@e2e"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return results


def _rounds() -> int:
    return 10 if os.environ.get("CI") == "true" else 3


def _emergency_race(w: World, extra: dict[str, str]) -> None:
    for round_ in range(_rounds()):
        w.at(f"2027-01-{10 + round_:02d}T11:00")
        before = {k: v for k, v in w.sandbox.state()["requests"].items() if "api-keys" in k}
        results = _two_emergencies(w, extra)
        outs = [r.stdout + r.stderr for r in results]
        assert all(r.returncode in (0, 10) for r in results), outs
        assert any(r.returncode == 0 for r in results), outs
        requests = w.sandbox.state()["requests"]
        created = sum(
            n - before.get(k, 0) for k, n in requests.items() if k == "POST /resend/api-keys"
        )
        assert created == 1, (round_, created, outs)
        assert w.sandbox.state()["credentials"]["resend"] == 1, (round_, outs)
        shown = _show(w, RESEND)
        emergencies = [r for r in shown["rotations"] if r["kind"] == "emergency"]  # type: ignore[attr-defined,index]
        assert len(emergencies) == round_ + 1, emergencies
        assert all(r["state"] == "completed" for r in emergencies)
        # Re-running a completed emergency within the hour must not start a third one.
        w.at(f"2027-01-{10 + round_:02d}T13:00")
    production = [h for h in w.sandbox.health_history if h.environment == "production"]
    assert production and all(h.ok for h in production)


def test_two_emergencies_at_once_on_sqlite(world: World) -> None:
    _emergency_race(world, {})


@pytest.mark.postgres
def test_two_emergencies_at_once_on_postgresql(world: World, pg_url: str) -> None:
    w = world
    w.env["ROTATOR_DATABASE_URL"] = pg_url
    assert w.rotate("db", "upgrade").returncode == 0
    for label, value in w.seeded.items():
        name, _, scope = label.partition("@")
        args = ["import", name, "--ref", value.ref] + (["--env", scope] if scope else [])
        assert w.rotate(*args, input=value.value + "\n").returncode == 0
    _emergency_race(w, {})


# ---------------------------------------------------------------------------- issue 12.5, 18.6
def test_rerunning_a_completed_emergency_reports_it(world: World) -> None:
    w = world
    w.at("2027-01-10T11:00")
    first = w.rotate("emergency", RESEND, "--reason", "leak", "--yes", actor="sec@e2e")
    assert first.returncode == 0, first.stdout + first.stderr
    (key,) = _served(w, "production", RESEND)
    w.at("2027-01-10T11:20")
    again = w.rotate("emergency", RESEND, "--reason", "leak", "--yes", actor="sec@e2e")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "completed at" in again.stdout and "--again" in again.stdout
    assert _served(w, "production", RESEND) == {key} and _resend_accepts(w, key)
    w.at("2027-01-10T11:30")
    third = w.rotate("emergency", RESEND, "--reason", "again", "--again", "--yes", actor="sec@e2e")
    assert third.returncode == 0, third.stdout + third.stderr
    assert not _resend_accepts(w, key)


def test_ctrl_c_says_the_state_is_safe_and_how_to_resume(world: World) -> None:
    w = world
    w.at("2027-01-10T11:00")
    w.sandbox.set_faults("none")
    env = {
        **os.environ,
        **w.env,
        "ROTATOR_FAKE_TIME": w.clock().isoformat(),
        "ROTATOR_ACTOR": "sec@e2e",
    }
    _break(w, "staging")  # staging's checks keep it busy long enough to interrupt
    proc = subprocess.Popen(
        [sys.executable, "-m", "rotator", "emergency", RESEND, "--reason", "leak", "--yes"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(4.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert "state is safe" in err and f"rotate emergency {RESEND}" in err
    _mend(w, "staging")
    again = w.rotate("emergency", RESEND, "--reason", "leak", "--yes", actor="sec@e2e")
    assert again.returncode == 0, again.stdout + again.stderr
    assert w.sandbox.state()["credentials"]["resend"] == 1


# ---------------------------------------------------------------------------- issue 12.6
def test_inventory_that_check_accepts_can_be_planned(world: World) -> None:
    w = world
    text = w.inventory.read_text().replace(
        "quarter_start_months = [1, 4, 7, 10]", "quarter_start_months = [1, 2]"
    )
    w.inventory.write_text(text)
    checked = w.rotate("check", "--offline")
    assert checked.returncode == 3, checked.stdout + checked.stderr
    assert "settings.quarter_start_months" in checked.stderr
    planned = w.rotate("plan")
    assert planned.returncode == 3, planned.stdout + planned.stderr


# ---------------------------------------------------------------------------- issue 12.7
def test_one_providers_bug_does_not_stop_the_run(world: World, tmp_path: Path) -> None:
    """An unexpected exception in one provider is that secret's failure, not the run's."""
    w = world
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import providers.resend as r\n"
        "def _boom(self, ctx):\n"
        "    raise KeyError('unexpected field in the answer')\n"
        "r.ResendProvider.generate = _boom\n"
    )
    w.env["PYTHONPATH"] = os.pathsep.join(
        [str(hook), str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")]
    )
    w.at("2027-01-01T02:30")
    done = w.rotate("run")
    assert done.returncode == 1, done.stdout + done.stderr
    lines = {line.split()[0]: line for line in done.stdout.splitlines() if line.strip()}
    # The bug counts against the step's retry budget like any failure, and is named.
    assert "retrying" in lines[RESEND] and "KeyError" in lines[RESEND]
    assert "generate" in lines[GCP] and "failed" not in lines[GCP]
    assert w.status()[(GCP, "shared")]["rotations"][0]["state"] == "staged"


# ---------------------------------------------------------------------------- issue 17
def test_emergency_in_month_2_moves_staging_back_before_retiring_its_key(world: World) -> None:
    w = world
    w.at("2027-01-01T02:30")
    assert w.rotate("run").returncode == 0
    april = _served(w, "staging", RESEND)
    assert len(april) == 1 and w.seeded[RESEND].value not in april
    (pending,) = april
    w.at("2027-02-12T11:00")
    since = len(w.sandbox.health_history)
    done = w.rotate("emergency", RESEND, "--reason", "leak", "--yes", actor="sec@e2e")
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "superseded the quarterly cycle 2027-01" in out
    assert "staging serves a credential about to be retired" in out
    staging = [h for h in w.sandbox.health_history[since:] if h.environment == "staging"]
    assert staging and all(h.ok for h in staging), staging
    assert not _resend_accepts(w, pending)
    assert not _resend_accepts(w, w.seeded[RESEND].value)
    (new,) = _served(w, "staging", RESEND)
    assert _served(w, "production", RESEND) == {new} and _resend_accepts(w, new)
    assert w.sandbox.state()["credentials"]["resend"] == 1


# ---------------------------------------------------------------------------- issue 18.1
def test_resume_after_a_promotion_returns_instead_of_polling(world: World) -> None:
    w = world
    w.at("2027-01-01T02:30")
    w.rotate("run")
    assert w.rotate("approve", RESEND, "--note", "q1", actor="owner@e2e").returncode == 0
    w.at("2027-02-01T02:30")
    w.rotate("run")
    w.sandbox.set_faults("pages-deploy-fails")
    for at in ("02:30", "02:36", "02:47", "03:08", "03:49"):
        w.at(f"2027-03-02T{at}")
        w.rotate("run")
    assert _rotation(w, RESEND, "quarterly")["state"] == "failed"
    w.sandbox.set_faults("none")
    w.at("2027-03-02T03:52")
    checks = len(w.sandbox.health_history)
    started = time.monotonic()
    resumed = w.rotate("resume", RESEND)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert time.monotonic() - started < 90
    assert len(w.sandbox.health_history) - checks < 20
    assert _rotation(w, RESEND, "quarterly")["state"] == "promoted"
    assert "retrying in 0 s" not in resumed.stderr


# ---------------------------------------------------------------------------- issue 18.2
class _Flaky(BaseHTTPRequestHandler):
    """A health endpoint that fails four answers of every five (never five in a row)."""

    count = 0

    def do_GET(self) -> None:
        type(self).count += 1
        status = 200 if type(self).count % 5 == 0 else 503
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return None


def test_a_flaky_health_endpoint_does_not_roll_back_a_healthy_promotion(world: World) -> None:
    w = world
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        w.at("2027-01-01T02:30")
        w.rotate("run")
        assert w.rotate("approve", RESEND, "--note", "q1", actor="owner@e2e").returncode == 0
        w.at("2027-02-01T02:30")
        w.rotate("run")
        w.at("2027-03-02T02:30")
        assert w.rotate("run").returncode == 0
        text = w.inventory.read_text()
        prod = text.index("[environments.production]")
        url_at = text.index("url = ", prod)
        end = text.index("\n", url_at)
        flaky = f'url = "http://127.0.0.1:{server.server_port}"'
        text = text[:url_at] + flaky + text[end:]
        # A verdict needs five failed checks in a row over 4 s; four never make one.
        text = text.replace("health_failures = 3", "health_failures = 5")
        text = text.replace('health_span = "2s"', 'health_span = "4s"')
        w.inventory.write_text(text)
        for hour in ("06", "12", "18"):
            w.at(f"2027-03-02T{hour}:00")
            w.rotate("run")
        assert _rotation(w, RESEND, "quarterly")["state"] == "promoted"
        assert _Flaky.count >= 12
    finally:
        server.shutdown()


def test_a_rollback_that_cannot_finish_is_failed_and_resume_finishes_it(world: World) -> None:
    w = world
    w.at("2027-01-01T02:30")
    w.rotate("run")
    assert w.rotate("approve", RESEND, "--note", "q1", actor="owner@e2e").returncode == 0
    w.at("2027-02-01T02:30")
    w.rotate("run")
    w.at("2027-03-02T02:30")
    assert w.rotate("run").returncode == 0
    shown = _show(w, RESEND)
    new_ref = next(v["provider_ref"] for v in shown["versions"] if v["state"] == "current")  # type: ignore[attr-defined,index]
    old = w.seeded[RESEND].value
    gone = httpx.delete(
        f"{w.sandbox.base_url}/resend/api-keys/{new_ref}",
        headers={"Authorization": f"Bearer {old}"},
    )
    assert gone.status_code == 200
    w.sandbox.set_faults("pages-deploy-fails")
    for minute in ("14:00", "14:06", "14:17", "14:38", "15:19"):
        w.at(f"2027-03-02T{minute}")
        done = w.rotate("run")
        assert done.returncode == 1, done.stdout + done.stderr
    rotation = _rotation(w, RESEND, "quarterly")
    assert rotation["state"] == "failed", rotation
    status = w.rotate("status")
    assert "rotate resume" in status.stdout
    shown = _show(w, RESEND)
    assert any("production" in k for k in shown["serving"])  # type: ignore[operator]
    w.sandbox.set_faults("none")
    w.at("2027-03-02T16:00")
    resumed = w.rotate("resume", RESEND)
    assert resumed.returncode == 1, resumed.stdout + resumed.stderr  # rolled back: not success
    assert _rotation(w, RESEND, "quarterly")["state"] == "rolled-back"
    assert _served(w, "production", RESEND) == {old}
    assert _served(w, "staging", RESEND) == {old}


# ---------------------------------------------------------------------------- issue 18.3
def test_gcp_reference_is_checked_and_a_wrong_one_can_be_corrected(world: World) -> None:
    w = world
    seeded = w.seeded[GCP]
    full = seeded.ref
    key_id = full.rsplit("/", 1)[-1]
    wrong = w.rotate(
        "import", GCP, "--ref", "idp-web-other", "--replace", input=seeded.value + "\n"
    )
    assert wrong.returncode == 2, wrong.stdout + wrong.stderr
    assert "projects/" in wrong.stderr  # names the accepted forms
    fixed = w.rotate("import", GCP, "--ref", key_id, "--replace", input=seeded.value + "\n")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    versions = _show(w, GCP)["versions"]
    current = [v for v in versions if v["state"] == "current"]  # type: ignore[attr-defined]
    assert [v["provider_ref"] for v in current] == [full]
    log = w.rotate("audit", "log", "--type", "credential.import_replaced", "--json")
    assert log.returncode == 0 and "import_replaced" in log.stdout
    w.at("2027-01-01T02:30")
    done = w.rotate("run")
    assert _rotation(w, GCP, "quarterly")["state"] == "staged", done.stdout + done.stderr


# ---------------------------------------------------------------------------- issue 19.6
@pytest.mark.postgres
def test_a_session_holding_the_trail_lock_cannot_hang_a_command(world: World, pg_url: str) -> None:
    import psycopg

    from audit.trail import ADVISORY_LOCK_KEY

    w = world
    w.env["ROTATOR_DATABASE_URL"] = pg_url
    assert w.rotate("db", "upgrade").returncode == 0
    with psycopg.connect(pg_url.replace("+psycopg", "")) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
        w.env["ROTATOR_DB_BUSY_TIMEOUT"] = "1"
        started = time.monotonic()
        done = w.rotate("import", RESEND, "--ref", "x", input=w.seeded[RESEND].value + "\n")
        assert time.monotonic() - started < 30
    assert done.returncode == 6, done.stdout + done.stderr
    assert "locked by another session (user postgres" in done.stderr
