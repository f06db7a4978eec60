"""Kill `rotate credentials rotate cloudflare` at every request it sends, run it again.

A dry run counts the requests of a whole rotation of the tool's own Cloudflare token
(read the old token's policies, create, verify the new, delete the old, prove the old
refused). Each request N is a crash point, before the sandbox applies it and after it
applied it but before it answers. Each case starts from the same snapshot (the token
imported into the store), kills the command at its point, runs it again, and checks:

* exactly one live tool token at Cloudflare, never zero, and it is the one the tool holds
  as current (compared by the tool's fingerprint);
* the old value is refused;
* `rotate audit verify` passes.

Every point runs (a rotation sends about five requests).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from rotator.sandbox.cloudflare_tokens import live_tokens
from tests.reliability.crash_support import (
    KILLED,
    PHASES,
    CrashWorld,
    Snapshot,
    restored,
    seeded_world,
    snapshot,
    verify_audit,
)

COMMAND = ("credentials", "rotate", "cloudflare")


@pytest.fixture(scope="module")
def own_template(tmp_path_factory: pytest.TempPathFactory) -> Snapshot:
    root = tmp_path_factory.mktemp("crash-own")
    with seeded_world(root / "seed") as w:
        w.at("2027-01-12T11:00")
        token = w.sandbox.cloudflare_token
        done = w.rotate("credentials", "import", "cloudflare", input=token + "\n")
        assert done.returncode == 0, done.stdout + done.stderr
        return snapshot(w, root / "template")


def _rotate(
    w: CrashWorld, kill_at: tuple[int, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return w.rotate(*COMMAND, actor="ops@crash", kill_at=kill_at)


def _problems(w: CrashWorld, old: str) -> list[str]:
    problems = []
    with w.sandbox.world.lock:
        live = [t.value for t in live_tokens(w.sandbox.world.cloudflare)]
    if len(live) != 1:
        problems.append(f"{len(live)} live tool tokens, expected exactly 1")
    with w.db() as conn:
        held = [
            r[0]
            for r in conn.execute("SELECT fingerprint FROM own_credential WHERE state = 'current'")
        ]
        open_rotations = conn.execute(
            "SELECT count(*) FROM own_rotation WHERE state NOT IN ('done', 'failed')"
        ).fetchone()[0]
    if len(held) != 1:
        problems.append(f"{len(held)} current rows")
    if live and held and w.fingerprint(live[0]) != held[0]:
        problems.append("the live token is not the one the tool holds")
    if old in live:
        problems.append("the old token is still live")
    if open_rotations:
        problems.append(f"{open_rotations} rotation(s) left in flight")
    audit = verify_audit(w)
    if audit:
        problems.append(audit)
    return problems


def _points(snap: Snapshot, root: Path) -> list[tuple[int, str]]:
    with restored(snap, root) as w:
        old = w.sandbox.cloudflare_token
        done = _rotate(w)
        assert done.returncode == 0, done.stdout + done.stderr
        seen = list(w.killer.seen)
        assert not _problems(w, old)
    shutil.rmtree(root)
    return [(n, phase) for n, _m, _p in seen for phase in PHASES]


def test_kill_at_every_request_of_the_token_rotation(
    own_template: Snapshot, tmp_path: Path
) -> None:
    points = _points(own_template, tmp_path / "dry")
    assert len(points) >= 8, points
    failures = []
    for n, phase in points:
        root = tmp_path / f"case-{n}-{phase}"
        with restored(own_template, root) as w:
            old = w.sandbox.cloudflare_token
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
