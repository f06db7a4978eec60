"""Two hosts run `rotate run` at the same moment against one database: each step once.

Each runner has its own state directory (its own run lock, as on two cron hosts) and the
same keys; they share the SQLite file, or a PostgreSQL database. The sandbox counts the
provider and Cloudflare requests, so a step done twice would show as a second create.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import World


def _second_host(w: World, tmp_path: Path) -> dict[str, str]:
    other = tmp_path / "host-b"
    other.mkdir()
    shutil.copytree(w.home / "keys", other / "keys")
    return {"ROTATOR_HOME": str(other)}


def _run_together(w: World, envs: list[dict[str, str]]) -> list[subprocess.CompletedProcess[str]]:
    base = {**os.environ, **w.env, "ROTATOR_FAKE_TIME": w.clock().isoformat()}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "rotator", "run"],
            env={**base, **env, "ROTATOR_ACTOR": f"cron@host{i}"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, env in enumerate(envs)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return results


def _assert_once(w: World, results: list[subprocess.CompletedProcess[str]]) -> None:
    requests = w.sandbox.state()["requests"]
    created = {
        k: v
        for k, v in requests.items()
        if k.startswith("POST") and ("api-keys" in k or k.endswith("/keys"))
    }
    assert sum(created.values()) == 2, (created, [r.stdout + r.stderr for r in results])
    # Each secret published to the staging Workers script exactly once.
    # (One bulk request may carry both: count the secrets written, not the requests.)
    puts = w.sandbox.world.cloudflare.scripts["bandofbakers-staging"].writes
    assert sum(puts.values()) == 2, puts
    # At most one Pages redeploy per runner that published, however many secrets it staged.
    retries = {k: v for k, v in requests.items() if k.endswith("/retry")}
    assert 1 <= sum(retries.values()) <= 2, retries
    for key, row in w.status().items():
        states = [r["state"] for r in row["rotations"]]
        assert len(states) == 1, (key, states)
    claimed = [r for r in results if "claimed" in r.stdout + r.stderr]
    done = [r for r in results if "generate" in r.stdout]
    assert done, [r.stdout for r in results]
    assert all(r.returncode in (0, 10) for r in results), [r.stderr for r in results]
    del claimed  # either runner may find nothing left to do; both outcomes are fine


def test_two_runners_share_a_sqlite_file(world: World, tmp_path: Path) -> None:
    w = world
    w.at("2027-01-01T02:30")
    db = f"sqlite:///{w.home / 'rotator.db'}"
    envs = [{"ROTATOR_DATABASE_URL": db}, {**_second_host(w, tmp_path), "ROTATOR_DATABASE_URL": db}]
    _assert_once(w, _run_together(w, envs))


@pytest.mark.postgres
def test_two_runners_share_a_postgresql_database(world: World, tmp_path: Path, pg_url: str) -> None:
    w = world
    w.env["ROTATOR_DATABASE_URL"] = pg_url
    assert w.rotate("db", "upgrade").returncode == 0
    for label, value in w.seeded.items():
        name, _, scope = label.partition("@")
        args = ["import", name, "--ref", value.ref] + (["--env", scope] if scope else [])
        done = w.rotate(*args, input=value.value + "\n")
        assert done.returncode == 0, done.stderr
    w.at("2027-01-01T02:30")
    envs = [{}, _second_host(w, tmp_path)]
    _assert_once(w, _run_together(w, envs))
