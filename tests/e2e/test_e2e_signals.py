"""Monitoring that means it (issue 15): Rollbar and Logflare error rates gate the sequence.

The sandbox emulates Rollbar's metrics and items API and Logflare's endpoint query; its
console raises one environment's error rate (what a credential that breaks a Server
Action does) or takes Rollbar down. The health URL stays green throughout: every
decision below is made by the error rates alone.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx

from rotator.sandbox.environments import deployed_secrets
from rotator.sandbox.inventory import ROLLBAR_TOKEN_ENV
from tests.e2e.conftest import World

RESEND = "BANDOFBAKERS_RESEND_API_KEY"


def _served(w: World, env: str, variable: str) -> set[str]:
    binding = w.sandbox.world.environments[env]
    return {value for name, value in deployed_secrets(w.sandbox.world, binding) if name == variable}


def _console(w: World, path: str, body: dict[str, object]) -> None:
    answer = httpx.post(f"{w.sandbox.base_url}/console/signals/{path}", json=body, timeout=10)
    assert answer.status_code == 200, answer.text


def _rotation(w: World, kind: str = "quarterly") -> dict[str, object]:
    done = w.rotate("show", RESEND, "--json")
    assert done.returncode == 0, done.stderr
    found = [r for r in json.loads(done.stdout)["rotations"] if r["kind"] == kind]
    assert found
    rotation: dict[str, object] = found[-1]
    return rotation


def _audit(w: World, kind: str) -> list[dict[str, object]]:
    done = w.rotate("audit", "log", "--type", kind, "--secret", RESEND, "--json")
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def _hook(w: World) -> Path:
    """Deliver notifications to a file through a command hook; return the file."""
    out = w.home.parent / "notifications.jsonl"
    script = w.home.parent / "hook.py"
    script.write_text(
        f"import sys\nwith open({str(out)!r}, 'a') as f:\n    f.write(sys.stdin.read() + '\\n')\n"
    )
    command = f"{sys.executable} {script}"
    text = w.inventory.read_text().replace(
        "channels = []", f'channels = [{{ kind = "command", command = "{command}" }}]'
    )
    w.inventory.write_text(text)
    assert w.rotate("check", "--offline").returncode == 0, w.outputs[-1]
    return out


def _notified(out: Path, event: str) -> list[str]:
    if not out.exists():
        return []
    lines = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    return [str(n["text"]) for n in lines if n["event"] == event and n["secret"] == RESEND]


def _promote(w: World) -> str:
    """Run the cycle of the Resend key up to production; return the old value."""
    w.at("2027-01-01T02:30")
    assert w.rotate("run").returncode == 0
    assert w.rotate("approve", RESEND, "--note", "q1", actor="owner@e2e").returncode == 0
    w.at("2027-02-01T02:30")
    assert w.rotate("run").returncode == 0
    w.at("2027-03-02T02:30")
    done = w.rotate("run")
    assert done.returncode == 0, done.stdout + done.stderr
    assert _rotation(w)["state"] == "promoted"
    old = w.seeded[RESEND].value
    assert _served(w, "production", RESEND) != {old}
    return old


def test_staging_errors_in_month_2_stop_the_promotion(world: World) -> None:
    w = world
    hook = _hook(w)
    w.at("2027-01-01T02:30")
    assert w.rotate("run").returncode == 0
    assert w.rotate("approve", RESEND, "--note", "q1", actor="owner@e2e").returncode == 0
    w.at("2027-02-01T02:30")
    assert w.rotate("run").returncode == 0
    assert _rotation(w)["state"] == "validated"
    for day in range(2, 11):  # the daily cron run: each judges the day since the last one
        w.at(f"2027-02-{day:02d}T02:30")
        assert w.rotate("run").returncode == 0
        assert _rotation(w)["state"] == "validated"
    # Staging's health URL stays green; Rollbar and Logflare see a Server Action failing.
    w.at("2027-02-10T12:00")
    _console(w, "staging/error-rate", {"rate": 0.08})
    w.at("2027-02-11T02:30")
    done = w.rotate("run")
    out = done.stdout + done.stderr
    assert done.returncode != 0, out
    assert "staging rollbar degraded" in out and "threshold 2.00%" in out, out
    assert "staging logflare degraded" in out, out
    assert "Production was NOT promoted" in out, out
    rotation = _rotation(w)
    assert rotation["state"] == "failed"
    figures = {v["signal"]: v["figures"] for v in rotation["signals"]["staging"]}  # type: ignore[index]
    assert figures["rollbar"]["error_rate"] > 0.02 > figures["rollbar"]["baseline_error_rate"]
    assert figures["rollbar"]["threshold"] == 0.02
    # `rotate metrics` exports the figures.
    metrics = w.rotate("metrics")
    assert metrics.returncode == 0, metrics.stderr
    degraded = [
        line
        for line in metrics.stdout.splitlines()
        if line.startswith("rotator_signal_status{")
        and f'secret="{RESEND}"' in line
        and 'environment="staging"' in line
        and 'signal="rollbar"' in line
    ]
    assert degraded and 'status="degraded"' in degraded[0], metrics.stdout
    assert any(
        line.startswith("rotator_signal_error_rate{")
        and 'environment="staging"' in line
        and 'window="baseline"' in line
        for line in metrics.stdout.splitlines()
    )
    (told,) = _notified(hook, "signal-degraded")
    assert told.startswith(f"{RESEND}: staging is degraded"), told
    assert "rollbar degraded: error rate" in told and "threshold 2.00%" in told
    assert "production was not promoted" in told
    shown = w.rotate("show", RESEND)
    assert "signal staging rollbar degraded: error rate" in shown.stdout, shown.stdout
    # Month 3 comes: production is never promoted, and still serves the old value.
    old = w.seeded[RESEND].value
    w.at("2027-03-02T02:30")
    w.rotate("run")
    assert _rotation(w)["state"] == "failed"
    assert _served(w, "production", RESEND) == {old}
    assert w.sandbox.world.resend.accepts(old)
    checked = _audit(w, "signals.checked")
    assert any("degraded" in json.dumps(e) for e in checked), checked
    assert w.rotate("audit", "verify").returncode == 0


def test_production_errors_six_hours_after_promotion_roll_back(world: World) -> None:
    w = world
    old = _promote(w)
    w.at("2027-03-02T08:29")
    quiet = w.rotate("run")
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr
    assert _rotation(w)["state"] == "promoted"
    w.at("2027-03-02T08:30")
    _console(w, "production/error-rate", {"rate": 0.05})
    w.at("2027-03-02T09:30")
    done = w.rotate("run")
    out = done.stdout + done.stderr
    assert "rolled back" in out, out
    # Automatic rollback: production is back on the previous value, which was never revoked.
    assert _served(w, "production", RESEND) == {old}
    assert _served(w, "staging", RESEND) == {old}
    assert w.sandbox.world.resend.accepts(old)
    rotation = _rotation(w)
    assert rotation["state"] in ("rolled-back", "awaiting-discard")
    changed = [e for e in _audit(w, "rotation.state_changed") if "degraded" in json.dumps(e)]
    assert changed, "the rollback's cause is audited with its figures"
    detail = str(changed[0]["details"]["detail"])  # type: ignore[index]
    assert detail.startswith("monitoring: production rollbar degraded: error rate"), detail
    assert "threshold 1.00%" in detail and "before the change" in detail


def test_rollbar_silent_longer_than_the_grace_holds_monitoring(world: World) -> None:
    w = world
    _promote(w)
    w.at("2027-03-02T03:00")
    _console(w, "rollbar/outage", {"down": True})
    w.at("2027-03-02T04:30")
    early = w.rotate("run")
    out = early.stdout + early.stderr
    assert "has not answered since 2027-03-02 04:30" in out and "the step waits" in out, out
    w.at("2027-03-02T11:00")
    late = w.rotate("run")
    out = late.stdout + late.stderr
    assert "longer than the grace" in out, out
    # A day after promotion, monitoring would have ended: it does not pass unseen.
    w.at("2027-03-03T03:00")
    w.rotate("run")
    assert _rotation(w)["state"] == "promoted"
    # Rollbar answers again: the unseen hours are judged, and monitoring completes.
    _console(w, "rollbar/outage", {"down": False})
    w.at("2027-03-03T04:00")
    back = w.rotate("run")
    assert back.returncode == 0, back.stdout + back.stderr
    assert _rotation(w)["state"] == "monitored"


def test_an_emergency_watches_production_for_a_short_window(world: World) -> None:
    w = world
    text = w.inventory.read_text()
    w.inventory.write_text(
        text.replace('emergency_monitoring = "0s"', 'emergency_monitoring = "15m"')
    )
    old = w.seeded[RESEND].value
    w.at("2027-01-10T11:00")
    done = w.rotate("emergency", RESEND, "--reason", "key in a gist", "--yes", actor="sec@e2e")
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert _rotation(w, "emergency")["state"] == "promoted"
    assert _served(w, "production", RESEND) != {old}
    # Not 24 hours: 15 minutes later the window is over and the compromised key is revoked.
    w.at("2027-01-10T11:16")
    again = w.rotate("run")
    assert again.returncode == 0, again.stdout + again.stderr
    assert _rotation(w, "emergency")["state"] == "completed"
    assert not w.sandbox.world.resend.accepts(old)
    emergency_id = str(_rotation(w, "emergency")["id"])
    checked = [e for e in _audit(w, "signals.checked") if emergency_id in json.dumps(e)]
    assert checked, "the window's figures are audited"
    assert {e["details"]["environment_checked"] for e in checked} == {"production"}  # type: ignore[index]


def test_rotate_check_names_a_missing_signal_token_and_never_shows_one(world: World) -> None:
    w = world
    token = w.env.pop(ROLLBAR_TOKEN_ENV)
    done = w.rotate("check")
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"credential 'rollbar_read_token': the environment variable {ROLLBAR_TOKEN_ENV}" in (
        done.stderr
    )
    w.env[ROLLBAR_TOKEN_ENV] = token
    assert w.rotate("check").returncode == 0
    # The tokens never reach the output, the audit trail or the database in clear.
    w.at("2027-01-01T02:30")
    w.rotate("run")
    text = "".join(w.outputs) + w.rotate("audit", "log", "--json").stdout
    assert token not in text and w.sandbox.logflare_key not in text
    database = (w.home / "rotator.db").read_bytes()
    assert token.encode() not in database
