"""Kill `rotate credentials rotate google` at every request it sends, run it again.

The rotation of the tool's own service-account key (a token exchange with the old key,
`keys.create`, an exchange with the new key, the key file written, `keys.delete` with a
token from the new key, an exchange proving the old key refused) is killed before the
sandbox applies each request and after it applied it but before it answers. Each case
starts from the same snapshot (the key imported into the store), and after the re-run:

* exactly one live key for the service account, never zero, and it is the key the store
  holds as current and the key file holds (a key created by a killed attempt and never
  recorded is deleted by the re-run);
* the old key is deleted;
* no own rotation is left in flight and `rotate audit verify` passes.

Every point runs under CI; elsewhere a sample (`crash_support.sample`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.reliability.crash_support import (
    KILLED,
    PHASES,
    CrashWorld,
    Snapshot,
    restored,
    sample,
    seeded_world,
    snapshot,
    verify_audit,
)

COMMAND = ("credentials", "rotate", "google")


@pytest.fixture(scope="module")
def google_template(tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    root = tmp_path_factory.mktemp("crash-own-google")
    with seeded_world(root / "seed") as w:
        w.at("2027-01-12T11:00")
        key_file = (w.root / "world" / "gcp-service-account.json").read_text()
        done = w.rotate("credentials", "import", "google", input=key_file)
        assert done.returncode == 0, done.stdout + done.stderr
        return snapshot(w, root / "template")


def _rotate(
    w: CrashWorld, kill_at: tuple[int, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return w.rotate(*COMMAND, actor="ops@crash", kill_at=kill_at)


def _live_keys(w: CrashWorld) -> list[str]:
    g = w.sandbox.world.google
    with w.sandbox.world.lock:
        account = w.sandbox.world.service_account
        keys = [account, *(k for k in g.keys.values() if k.client_email == account.client_email)]
        return [k.key_id for k in keys if k.key_id not in g.deleted_keys]


def _problems(w: CrashWorld, old: str) -> list[str]:
    problems = []
    live = _live_keys(w)
    if len(live) != 1:
        problems.append(f"{len(live)} live service-account keys, expected exactly 1")
    with w.db() as conn:
        held = [
            r[0]
            for r in conn.execute(
                "SELECT provider_ref FROM own_credential WHERE state = 'current' "
                "AND name = 'gcp_service_account'"
            )
        ]
        open_rotations = conn.execute(
            "SELECT count(*) FROM own_rotation WHERE state NOT IN ('done', 'failed')"
        ).fetchone()[0]
    in_file = json.loads((w.root / "world" / "gcp-service-account.json").read_text())
    if held != live:
        problems.append(f"the store holds {held}, the live keys are {live}")
    if in_file["private_key_id"] not in live:
        problems.append("the key file holds a key that is not live")
    if old in live:
        problems.append("the old key is still live")
    if open_rotations:
        problems.append(f"{open_rotations} rotation(s) left in flight")
    audit = verify_audit(w)
    if audit:
        problems.append(audit)
    return problems


def _points(snap: Snapshot, root: Path) -> list[tuple[int, str]]:
    with restored(snap, root) as w:
        old = _live_keys(w)[0]
        done = _rotate(w)
        assert done.returncode == 0, done.stdout + done.stderr
        seen = list(w.killer.seen)
        assert not _problems(w, old)
    shutil.rmtree(root)
    return [(n, phase) for n, _m, _p in seen for phase in PHASES]


def test_kill_at_every_request_of_the_key_rotation(
    google_template: Snapshot, tmp_path: Path
) -> None:
    points = _points(google_template, tmp_path / "dry")
    assert len(points) >= 8, points
    failures = []
    for n, phase in sample(points, every=3):
        root = tmp_path / f"case-{n}-{phase}"
        with restored(google_template, root) as w:
            old = _live_keys(w)[0]
            killed = _rotate(w, kill_at=(n, phase))
            where = w.killer.killed_at
            if killed.returncode != KILLED:
                failures.append(f"{n}/{phase}: not killed (exit {killed.returncode})")
                continue
            again = _rotate(w)
            if again.returncode != 0:
                failures.append(
                    f"{n}/{phase} {where}: re-run exit {again.returncode}: {again.stderr}"
                )
                continue
            problems = _problems(w, old)
            if problems:
                failures.append(f"{n}/{phase} {where}: {problems}")
        shutil.rmtree(root, ignore_errors=True)
    assert not failures, "\n".join(failures)
