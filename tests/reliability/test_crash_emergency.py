"""Kill `rotate emergency` with SIGKILL at every request it sends, run it again: nothing lost.

For Resend (a token shown once, reconciled by name) and the GCP API key (a long-running
create, reconciled by keyId), a dry run counts the requests of a whole emergency; then
each request N is a crash point, once before the sandbox applies it and once after it
applied it but before it answers. Each case starts from the same snapshot, kills the
command at its point, runs the same command again, and checks:

* exactly one new credential at the provider, the compromised one gone, no orphan left;
* the value deployed to staging and production (Workers and Pages) is the current value
  the tool holds (compared by the tool's own fingerprint);
* production healthy at every moment the sandbox recorded;
* `rotate audit verify` passes and the trail shows a step started, never finished, and
  later completed.

Every point runs with ROTATOR_FULL_CRASH_MATRIX=1; otherwise a sample that moves each day
(every 3rd point under CI=true, every 13th else; see `crash_support.sample`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.reliability.crash_support import (
    GCP,
    KILLED,
    PHASES,
    RESEND,
    CrashWorld,
    Snapshot,
    full_matrix,
    interruption_shown,
    matrix_mode,
    restored,
    sample,
    seeded_world,
    snapshot,
    verify_audit,
)

SECRETS = (RESEND, GCP)
# The full matrix is the slow part of the suite (see docs/reliability.md for the modes).
pytestmark = [pytest.mark.slow] if full_matrix() else []
WORKERS = max(2, min(8, 2 * (os.cpu_count() or 1)))


@pytest.fixture(scope="module")
def emergency_template(tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    root = tmp_path_factory.mktemp("crash-emergency")
    with seeded_world(root / "seed") as w:
        w.at("2027-01-12T11:00")
        return snapshot(w, root / "template")


def _emergency(
    w: CrashWorld, secret: str, kill_at: tuple[int, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return w.rotate(
        "emergency", secret, "--reason", "crash test", "--yes", actor="sec@crash", kill_at=kill_at
    )


def _dry_run(snap: Snapshot, root: Path, secret: str) -> list[tuple[int, str, str]]:
    with restored(snap, root) as w:
        done = w.rotate("emergency", secret, "--reason", "dry run", "--yes", actor="sec@crash")
        assert done.returncode == 0, done.stdout + done.stderr
        seen = list(w.killer.seen)
        problems = _problems(w, secret, expect_interruption=False)
        assert not problems, problems
    shutil.rmtree(root)
    return seen


def _problems(w: CrashWorld, secret: str, *, expect_interruption: bool = True) -> list[str]:
    found: list[str] = []
    emergencies = [r for r in w.rotations() if r["kind"] == "emergency" and r["name"] == secret]
    if len(emergencies) != 1 or emergencies[0]["state"] != "completed":
        found.append(f"emergency rotations: {emergencies}")
        return found
    rotation = emergencies[0]["id"]
    versions = w.versions(secret)
    current = [v for v in versions if v["state"] == "current"]
    live = [v for v in versions if v["state"] != "revoked"]
    if len(current) != 1 or len(live) != 1 or current[0]["rotation_id"] != rotation:
        found.append(f"versions: {versions}")
        return found
    # The provider: one live credential, the one the tool holds as current.
    keys = w.live_resend_keys() if secret == RESEND else w.live_gcp_keys()
    if len(keys) != 1:
        found.append(f"live credentials at the provider: {keys}")
    by_name = [k for k in keys if rotation in k]
    if len(by_name) != 1:
        found.append(f"no single credential named after rotation {rotation}: {keys}")
    # No value lost: what runs in staging and production is the current value.
    deployed = w.deployed(secret)
    if len(deployed) != 4:
        found.append(f"deployed in {sorted(deployed)} only")
    for where, value in deployed.items():
        if w.fingerprint(value) != current[0]["fingerprint"]:
            found.append(f"{where} runs a value that is not the current one")
    unhealthy = w.production_unhealthy()
    if unhealthy:
        found.append(f"production unhealthy: {unhealthy[:3]}")
    if expect_interruption and not interruption_shown(w.events(rotation)):
        found.append("the audit trail shows no interrupted step that was later completed")
    problem = verify_audit(w)
    if problem:
        found.append(problem)
    return found


def _crash_case(snap: Snapshot, root: Path, secret: str, n: int, phase: str) -> list[str]:
    label = f"{secret} request {n} {phase}"
    with restored(snap, root) as w:
        killed = _emergency(w, secret, kill_at=(n, phase))
        if killed.returncode != KILLED:
            return [f"{label}: not killed (exit {killed.returncode})"]
        # The health checks before assessment come before anything is recorded: a kill
        # there leaves no emergency, and so no interrupted step, behind.
        recorded = any(r["kind"] == "emergency" for r in w.rotations())
        w.later(minutes=2)  # a person notices and runs it again
        again = _emergency(w, secret)
        if again.returncode != 0:
            out = again.stdout + again.stderr
            return [f"{label}: the re-run exited {again.returncode}: {out[-600:]}"]
        problems = [f"{label}: {p}" for p in _problems(w, secret, expect_interruption=recorded)]
    shutil.rmtree(root, ignore_errors=True)
    return problems


def _cases(secret: str, count: int) -> list[tuple[str, int, str]]:
    points = [(secret, n, phase) for n in range(1, count + 1) for phase in PHASES]
    return sample(points)


@pytest.fixture(scope="module")
def counted(
    emergency_template: Snapshot, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, int]]:
    root = tmp_path_factory.mktemp("dry")
    yield {s: len(_dry_run(emergency_template, root / s, s)) for s in SECRETS}


@pytest.mark.parametrize("secret", SECRETS)
def test_emergency_survives_a_kill_at_every_request(
    emergency_template: Snapshot,
    counted: dict[str, int],
    tmp_path: Path,
    secret: str,
) -> None:
    cases = _cases(secret, counted[secret])
    started = time.monotonic()
    with ThreadPoolExecutor(WORKERS) as pool:
        results = list(
            pool.map(
                lambda case: _crash_case(
                    emergency_template, tmp_path / f"{case[1]}-{case[2]}", *case
                ),
                cases,
            )
        )
    problems = [p for found in results for p in found]
    print(
        f"\n{secret}: {counted[secret]} requests, {len(cases)} crash cases "
        f"({matrix_mode()}), {time.monotonic() - started:.0f} s"
    )
    assert not problems, matrix_mode() + "\n" + "\n".join(problems)
