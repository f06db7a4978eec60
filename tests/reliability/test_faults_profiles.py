"""Rotations complete under every sandbox fault profile; a persistent failure ends `failed`.

One Band of Bakers world is seeded per module (`rotate init`, every value imported) and
frozen with `crash_support.snapshot`; each case restores it into a fresh sandbox in
milliseconds. A case turns its fault profile on for good and runs month 1 (2027-01-01
02:30) as cron would: `rotate run`, again an hour later while anything is still retrying,
up to a bound. It then checks the final states and that each automated secret has exactly
one new credential at the provider: the one the tool holds as pending.

The persistent failure: every request to Resend has its connection dropped (the sandbox's
request hook), so its generate fails on each run until the retry budget is spent. The
rotation must then be `failed` and need a person (`rotate status --json`), the trail must
hold a `step.failed` whose outcome is "failed", a webhook must have been told, and later
runs must not call Resend again. The other secrets go on as usual.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from rotator.engine import RETRY_BUDGET
from rotator.sandbox.faults import profile_named
from rotator.sandbox.inventory import sandbox_inventory
from rotator.sandbox.server import DropConnectionError
from tests.reliability.crash_support import (
    GCP,
    GOOGLE,
    RESEND,
    STRIPE,
    CrashWorld,
    Snapshot,
    restored,
    seeded_world,
    snapshot,
    verify_audit,
)

MAX_RUNS = 6
STAGED = {RESEND: "staged", GCP: "staged", STRIPE: "awaiting-supply", GOOGLE: "awaiting-supply"}


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snapshot]:
    root = tmp_path_factory.mktemp("faults-seed")
    with seeded_world(root / "world") as w:
        snap = snapshot(w, root / "snapshot")
    yield snap


def _states(w: CrashWorld) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for r in w.rotations():
        found.setdefault(r["name"], set()).add(r["state"])
    return found


def _month_one(w: CrashWorld, later: timedelta) -> list[int]:
    """Run month 1 as cron would, again `later` while anything retries; the exit codes."""
    w.at("2027-01-01T02:30")
    codes = []
    for _ in range(MAX_RUNS):
        done = w.rotate("run")
        assert "Traceback" not in done.stderr, done.stderr
        codes.append(done.returncode)
        if done.returncode == 0:
            break
        assert done.returncode == 1 and "retrying" in done.stdout, done.stdout + done.stderr
        w.clock.set(w.clock() + later)
    return codes


def _one_new_credential_each(w: CrashWorld) -> None:
    """Resend and GCP each hold the imported key and the tool's pending one, no other."""
    for name, live in ((RESEND, w.live_resend_ids()), (GCP, w.live_gcp_keys())):
        versions = w.versions(name)
        pending = [v for v in versions if v["state"] == "pending"]
        assert len(pending) == 1, (name, versions)
        imported = w.seeded[name].ref
        assert sorted(live) == sorted([imported, pending[0]["provider_ref"]]), (name, live)
    with w.sandbox.world.lock:
        assert len(w.sandbox.world.apikeys.keys) == 2  # none created and deleted again


PROFILES: dict[str, dict[str, Any]] = {
    "latency-100ms": {},
    "flaky-503": {},
    "rate-limited": {},
    "dropped": {},
    "cloudflare-block": {},
    # Google's create operation takes 3 minutes; the tool polls for 2 s, then the next
    # run (4 minutes later on the sandbox clock) resumes it and finds the key.
    "slow-lro": {"operation_timeout": 2, "later": timedelta(minutes=4)},
    "eventual": {},
}


def _month_one_under(seeded: Snapshot, root: Path, profile: str) -> str:
    """Restore the seeded world, turn `profile` on for good, run month 1 and check it."""
    options = PROFILES[profile]
    started = time.monotonic()
    with restored(seeded, root) as w:
        w.sandbox.on_request = None
        if "operation_timeout" in options:
            inventory = Path(w.env["ROTATOR_INVENTORY"])
            text = inventory.read_text().replace(
                "options = { project =",
                f"options = {{ operation_timeout = {options['operation_timeout']}, project =",
            )
            inventory.write_text(text)
        w.sandbox.set_faults(profile_named(profile))
        codes = _month_one(w, options.get("later", timedelta(hours=1)))
        assert codes[-1] == 0, (profile, codes, w.outputs[-2:])
        assert _states(w) == {k: {v} for k, v in STAGED.items()}, (profile, _states(w))
        _one_new_credential_each(w)
        assert not w.production_unhealthy(), profile
        assert verify_audit(w) == "", profile
        requests = sum(w.sandbox.state()["requests"].values())
        return (
            f"{profile}: {len(codes)} run(s) exit {codes}, {requests} requests, "
            f"{time.monotonic() - started:.1f} s"
        )


def test_month_one_completes_under_each_fault_profile(seeded: Snapshot, tmp_path: Path) -> None:
    """Each profile in its own world and sandbox; the worlds run side by side, since most
    of a faulty run is spent waiting (latency, Retry-After, health retries)."""
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(PROFILES)) as pool:
        futures = {p: pool.submit(_month_one_under, seeded, tmp_path / p, p) for p in PROFILES}
    failures, lines = {}, []
    for profile, future in futures.items():
        try:
            lines.append(future.result())
        except Exception as exc:  # report every profile, not only the first to fail
            failures[profile] = exc
    print("\n" + "\n".join(lines) + f"\nall profiles: {time.monotonic() - started:.1f} s")
    assert not failures, failures


class _Webhook:
    """A local HTTP endpoint that keeps the JSON bodies POSTed to it."""

    def __init__(self) -> None:
        bodies: list[dict[str, Any]] = []
        self.bodies = bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                data = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                bodies.append(json.loads(data))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_persistent_failure_ends_failed_and_stops(seeded: Snapshot, tmp_path: Path) -> None:
    started = time.monotonic()
    hook = _Webhook()
    resend_calls: list[str] = []

    def refuse_resend(n: int, method: str, path: str, phase: str) -> None:
        if path.startswith("/resend/") and phase == "before":
            resend_calls.append(f"{method} {path}")
            raise DropConnectionError

    try:
        with restored(seeded, tmp_path / "w") as w:
            sandbox_inventory(w.sandbox, w.root / "world", notify_email=False, webhook_url=hook.url)
            w.sandbox.on_request = refuse_resend
            w.at("2027-01-01T02:30")
            for attempt in range(1, RETRY_BUDGET + 1):
                done = w.rotate("run")
                assert done.returncode == 1, done.stdout + done.stderr
                row = next(r for r in w.rotations() if r["name"] == RESEND)
                if attempt < RETRY_BUDGET:
                    assert row["state"] == "planned" and "retrying" in done.stdout, done.stdout
                    # Past the retry time (backoff 5, 10, 20, 40 minutes), the same day.
                    w.later(hours=1)
            assert "failed" in done.stdout, done.stdout
            assert row["state"] == "failed", row

            status = json.loads(w.rotate("status", "--json").stdout)
            resend = next(r for r in status if r["secret"] == RESEND)
            failed = resend["rotations"][0]
            assert failed["state"] == "failed", failed
            assert failed["needs_person"] is True, failed
            assert failed["last_error"], failed
            events = w.events(row["id"])
            outcomes = [e["outcome"] for e in events if e["type"] == "step.failed"]
            assert outcomes == ["retry"] * (RETRY_BUDGET - 1) + ["failed"], outcomes
            # One `step-failed` notification (the rest ask a person to supply Stripe and
            # Google values, as on any month 1), delivered to the webhook.
            sent = [e for e in w.events() if e.get("notification") == "step-failed"]
            assert [e["type"] for e in sent] == ["notification.sent"], sent
            told = [b for b in hook.bodies if b.get("event") == "step-failed"]
            assert len(told) == 1 and told[0]["secret"] == RESEND, hook.bodies
            assert "needs a person" in json.dumps(told[0]), told
            # The other automated secret went on regardless.
            assert _states(w)[GCP] == {"staged"}

            # Later runs, the same day and the next, leave it for the person.
            calls = len(resend_calls)
            for later in (timedelta(hours=2), timedelta(days=2)):
                w.clock.set(w.clock() + later)
                again = w.rotate("run")
                assert again.returncode in (0, 1), again.stdout + again.stderr
                assert next(r for r in w.rotations() if r["name"] == RESEND)["state"] == "failed"
            assert len(resend_calls) == calls, resend_calls[calls:]
            assert len([b for b in hook.bodies if b.get("event") == "step-failed"]) == 1
            failures = [e for e in w.events(row["id"]) if e["type"] == "step.failed"]
            assert len(failures) == RETRY_BUDGET
            assert verify_audit(w) == ""
            print(
                f"\npersistent failure: failed after {RETRY_BUDGET} runs, "
                f"{calls} Resend requests refused, {len(hook.bodies)} webhook message(s), "
                f"{time.monotonic() - started:.1f} s"
            )
    finally:
        hook.close()
