"""End to end against the sandbox's awkward providers: sending keys, propagation, Google.

Each test is an acceptance scenario of issue 13: the `rotate` CLI as a subprocess, over
real HTTP, against a sandbox that answers as the providers document.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta

from rotator.sandbox.faults import FaultProfile
from tests.e2e.conftest import World

RESEND = "BANDOFBAKERS_RESEND_API_KEY"
STRIPE = "BANDOFBAKERS_STRIPE_SECRET_KEY"
GCP = "BANDOFBAKERS_GCP_IDENTITY_PLATFORM_API_KEY"
MANAGEMENT_ENV = "ROTATOR_E2E_RESEND_MANAGEMENT_KEY"


def _running_clock(start: datetime, speed: float) -> Callable[[], datetime]:
    """A sandbox clock that runs `speed` times faster than the wall clock."""
    began = time.monotonic()
    return lambda: start + timedelta(seconds=(time.monotonic() - began) * speed)


def _production_always_healthy(w: World) -> None:
    history = [h for h in w.sandbox.health_history if h.environment == "production"]
    assert history and all(h.ok for h in history), [h for h in history if not h.ok]


def _no_leaks(w: World) -> None:
    text = "\n".join(w.outputs)
    for value in w.issued_values():
        assert value not in text


def test_an_emergency_completes_when_the_new_key_is_refused_for_90_seconds(
    world: World,
) -> None:
    """The person supplies the Stripe key they just rolled; Stripe refuses it for 90 s."""
    w = world
    w.at("2027-01-12T10:00")
    w.sandbox.set_faults(FaultProfile("propagation", credential_propagation_delay=90.0))
    # The sandbox's 90 s pass in 9 s of wall-clock time, while the tool waits on its own.
    w.sandbox.world.clock = _running_clock(w.sandbox.world.now(), speed=10.0)
    started = w.rotate("emergency", STRIPE, "--reason", "leaked", "--yes", actor="sec@e2e")
    assert started.returncode == 0, started.stdout + started.stderr
    value = w.person.create(STRIPE, None)
    supplied = w.rotate("supply", STRIPE, input=value + "\n", actor="ops@e2e")
    assert supplied.returncode == 0, supplied.stdout + supplied.stderr
    w.person.revoke_old(STRIPE, None)
    confirmed = w.rotate("confirm", STRIPE, "--step", "revoke", actor="ops@e2e")
    assert confirmed.returncode == 0, confirmed.stdout + confirmed.stderr
    shown = w.rotate("show", STRIPE, "--json")
    assert '"completed"' in shown.stdout, shown.stdout
    _production_always_healthy(w)
    _no_leaks(w)


def _sending_inventory(w: World) -> None:
    """Rotate the Resend key as a sending key, managed with a full-access key of the tool."""
    text = w.inventory.read_text()
    text = text.replace(
        'options = { permission = "full_access" }',
        'options = { permission = "sending_access", management_key = "resend_management" }',
    )
    text = text.replace(
        "[credentials]\n", f'[credentials]\nresend_management = {{ env = "{MANAGEMENT_ENV}" }}\n'
    )
    w.inventory.write_text(text)
    with w.sandbox.world.lock:
        manager = w.sandbox.world.resend.create("rotator", "full_access", w.sandbox.world.now())
    w.env[MANAGEMENT_ENV] = manager.token


def test_a_quarterly_cycle_and_an_emergency_with_a_sending_key(world: World) -> None:
    w = world
    _sending_inventory(w)
    keys = w.sandbox.world.resend.keys
    w.at("2027-01-01T02:30")
    first = w.rotate("run")
    assert first.returncode == 0, first.stdout + first.stderr
    w.at("2027-02-01T02:30")
    assert w.rotate("run").returncode == 0
    assert w.rotate("approve", RESEND, "--note", "q1", actor="owner@e2e").returncode == 0
    w.at("2027-03-02T02:30")
    promoted = w.rotate("run")
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    w.at("2027-03-04T02:30")
    assert w.rotate("run").returncode == 0
    # Month 4: the old key is revoked with the management key, and the next cycle begins
    # although the key in use is now a sending key.
    w.at("2027-04-01T02:30")
    revoke = w.rotate("run")
    assert revoke.returncode in (0, 1), revoke.stdout + revoke.stderr
    shown = w.rotate("show", RESEND, "--json")
    assert '"completed"' in shown.stdout or '"revoked"' in shown.stdout, shown.stdout
    assert "restricted_api_key" not in revoke.stdout + revoke.stderr
    sending = [k for k in keys.values() if k.permission == "sending_access"]
    assert sending, "no sending key was made"
    assert w.seeded[RESEND].ref not in keys  # the full-access key the app had is gone

    w.at("2027-04-06T11:00")
    done = w.rotate("emergency", RESEND, "--reason", "leaked", "--yes", actor="sec@e2e")
    assert done.returncode == 0, done.stdout + done.stderr
    in_use = w.sandbox.world.cloudflare.scripts["bandofbakers-production"].secrets[RESEND][1]
    current = w.sandbox.world.resend.by_token(in_use)
    assert current is not None and current.permission == "sending_access"
    assert {k.permission for k in keys.values()} == {"full_access", "sending_access"}
    _production_always_healthy(w)
    _no_leaks(w)


def test_a_gcp_key_blocked_by_referrer_is_not_counted_as_revoked(world: World) -> None:
    """The old key answers `API_KEY_HTTP_REFERRER_BLOCKED`: alive, so not revoked.

    Someone undeletes the old key in the console right after the tool deleted it (Google
    keeps a deleted key undeletable for 30 days), and its referrers no longer match the
    tool's probe: the probe is refused, but for a restriction, not because the key is gone.
    """
    import json
    import os
    import signal
    import subprocess
    import sys

    w = world
    w.at("2027-01-12T10:00")
    sandbox = w.sandbox.world
    with sandbox.lock:
        old = next(k for k in sandbox.apikeys.keys.values() if k.key_id == "idp-web-initial")
    undeleted: list[str] = []

    def undelete_once(_n: int, method: str, path: str, phase: str) -> None:
        deleting = method == "DELETE" and path.endswith("/idp-web-initial")
        if phase == "after" and deleting and not undeleted:
            with sandbox.lock:
                old.deleted = None
                old.restrictions = {
                    "browserKeyRestrictions": {"allowedReferrers": ["https://admin.example.com/*"]}
                }
            undeleted.append(path)

    w.sandbox.on_request = undelete_once
    env = {
        **os.environ,
        **w.env,
        "ROTATOR_FAKE_TIME": w.clock().isoformat(),
        "ROTATOR_ACTOR": "sec@e2e",
        "ROTATOR_PROGRESS": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "rotator", "emergency", GCP, "--reason", "leaked", "--yes"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    seen: list[str] = []
    for line in proc.stdout:
        seen.append(line)
        if "retrying in" in line:
            break
    # The tool would check again in a minute; a person stops it here to look.
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=60)
    text = "".join(seen) + rest
    w.outputs.append(text)
    assert undeleted, text
    assert "still accepts credential" in text, text
    assert proc.returncode == 130, text
    # Not counted as revoked: the old credential is not `revoked` and no event says so.
    shown = json.loads(w.rotate("show", GCP, "--json").stdout)
    states = {v["id"]: v["state"] for v in shown["versions"]}
    assert "revoked" not in states.values(), states
    log = w.rotate("audit", "log", "--secret", GCP, "--json").stdout
    assert '"credential.revoked"' not in log
    with sandbox.lock:
        assert old.deleted is None  # it really is alive at Google
    # A minute later the tool deletes it again; this time it is gone and proven so.
    w.sandbox.on_request = None
    w.at("2027-01-12T10:05")
    again = w.rotate("emergency", GCP, "--reason", "leaked", "--yes", actor="sec@e2e")
    assert again.returncode == 0, again.stdout + again.stderr
    with sandbox.lock:
        assert old.deleted is not None
    log = w.rotate("audit", "log", "--secret", GCP, "--json").stdout
    assert '"credential.revoked"' in log
    _no_leaks(w)


def test_import_verifies_the_value_with_the_provider(world: World) -> None:
    """Issue 19: a wrong value is refused at import, not found by the next emergency."""
    import json

    w = world
    before = json.loads(w.rotate("show", RESEND, "--json").stdout)["versions"]
    wrong = w.rotate("import", RESEND, "--replace", input="re_not_a_real_key_1234567890\n")
    assert wrong.returncode == 2, wrong.stdout + wrong.stderr
    assert "does not accept the value" in wrong.stderr and "nothing was recorded" in wrong.stderr
    assert json.loads(w.rotate("show", RESEND, "--json").stdout)["versions"] == before
    # A live GCP key, but not the one the --ref names: Google says whose it is.
    with w.sandbox.world.lock:
        other = w.sandbox.world.apikeys.create(
            "bandofbakers-prod",
            "other-key",
            "another app's key",
            {},
            w.sandbox.world.now(),
        )
    mismatched = w.rotate(
        "import", GCP, "--replace", "--ref", "idp-web-initial", input=other.key_string + "\n"
    )
    assert mismatched.returncode == 2, mismatched.stdout + mismatched.stderr
    assert "is not the credential" in mismatched.stderr
    seeded = w.seeded[GCP].value
    right = w.rotate("import", GCP, "--replace", "--ref", "idp-web-initial", input=seeded + "\n")
    assert right.returncode == 0, right.stdout + right.stderr
    log = w.rotate("audit", "log", "--secret", GCP, "--type", "credential.import_replaced")
    assert log.returncode == 0 and "credential.import_replaced" in log.stdout
    _no_leaks(w)
