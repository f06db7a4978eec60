"""A sandbox in the test process and the `rotate` CLI run as a subprocess against it.

The subprocess's clock starts at the simulated time through ROTATOR_FAKE_TIME, and the
sandbox's clock is set to the same moment before each command, so months and maintenance
windows can be crossed without waiting.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from rotator.demo import Person, SimulatedClock
from rotator.sandbox import Sandbox
from rotator.sandbox.inventory import sandbox_environment, sandbox_inventory
from tests.reliability.crash_support import copy_parts, restore_parts

LONDON = ZoneInfo("Europe/London")


def london(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=LONDON)


@dataclass
class World:
    sandbox: Sandbox
    clock: SimulatedClock
    inventory: Path
    home: Path
    env: dict[str, str]
    person: Person
    seeded: dict[str, Any]
    outputs: list[str] = field(default_factory=list)

    def at(self, when: str) -> None:
        self.clock.set(london(when))

    def rotate(
        self, *args: str, input: str | None = None, actor: str = "cron@e2e"
    ) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            **self.env,
            "ROTATOR_FAKE_TIME": self.clock().isoformat(),
            "ROTATOR_ACTOR": actor,
        }
        done = subprocess.run(
            [sys.executable, "-m", "rotator", *args],
            input=input,
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
            check=False,
        )
        self.outputs.extend([done.stdout, done.stderr])
        return done

    def status(self) -> dict[tuple[str, str], Any]:
        done = self.rotate("status", "--json")
        assert done.returncode == 0, done.stderr
        return {(r["secret"], r["scope"]): r for r in json.loads(done.stdout)}

    def issued_values(self) -> list[str]:
        """Every credential value the sandbox ever issued (for leak checks)."""
        world = self.sandbox.world
        values = [k.token for k in world.resend.keys.values()]
        values += [k.secret for k in world.stripe.keys.values()]
        values += [k.key_string for k in world.apikeys.keys.values()]
        for client in world.google.clients.values():
            values += [s.value for s in client.secrets.values()]
        return [v for v in values if v]


@dataclass
class _Seeded:
    """Band of Bakers after `rotate init` and the import of every value: files and sandbox."""

    root: Path
    parts: dict[str, Any]
    seeded: dict[str, Any]
    person: tuple[list[str], dict[str, list[str]]]


@pytest.fixture(scope="session")
def _seeded(tmp_path_factory: pytest.TempPathFactory) -> _Seeded:
    """Build the starting world once per worker: `rotate init` and eight imports cost every
    e2e test as much as its own commands did; each test gets a copy (see `world`)."""
    root = tmp_path_factory.mktemp("e2e-seeded")
    clock = SimulatedClock(london("2027-01-01T02:30"))
    with (
        pytest.MonkeyPatch.context() as mp,
        Sandbox(faults="none", seed=3, clock=clock) as sandbox,
        httpx.Client(timeout=10) as http,
    ):
        seeded = sandbox.seed_bandofbakers()
        w = _world(sandbox, clock, root, http, seeded, mp)
        assert w.rotate("init").returncode == 0
        for label, value in seeded.items():
            name, _, scope = label.partition("@")
            args = ["import", name, "--ref", value.ref] + (["--env", scope] if scope else [])
            done = w.rotate(*args, input=value.value + "\n", actor="ops@e2e")
            assert done.returncode == 0, done.stderr
            if name.endswith("STRIPE_SECRET_KEY"):
                w.person.stripe_keys.append(value.ref)
            if name == "GOOGLE_CLIENT_SECRET":
                w.person.oauth_secrets.setdefault(value.options["client_id"], []).append(value.ref)
        person = (list(w.person.stripe_keys), copy.deepcopy(w.person.oauth_secrets))
        return _Seeded(root, copy_parts(sandbox.world), seeded, person)


def _world(
    sandbox: Sandbox,
    clock: SimulatedClock,
    root: Path,
    http: httpx.Client,
    seeded: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> World:
    home = root / "state"
    inventory = sandbox_inventory(sandbox, root / "world", notify_email=False)
    env = {
        "ROTATOR_HOME": str(home),
        "ROTATOR_INVENTORY": str(inventory),
        **sandbox_environment(sandbox),
    }
    for var in ("ROTATOR_DATABASE_URL", "ROTATOR_MASTER_KEY", "ROTATOR_MASTER_KEY_FILE"):
        monkeypatch.delenv(var, raising=False)
    return World(sandbox, clock, inventory, home, env, Person(sandbox.base_url, http), seeded)


@pytest.fixture
def world(_seeded: _Seeded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """Band of Bakers at 2027-01-01 02:30, every value imported, in a sandbox of its own.

    A copy of `_seeded`: its files (state directory, checkpoint sink, `.env.local`) and its
    sandbox's provider state in a new sandbox, whose own inventory is written over the copy.
    """
    shutil.copytree(
        _seeded.root, tmp_path, dirs_exist_ok=True, ignore=shutil.ignore_patterns("run.lock")
    )
    clock = SimulatedClock(london("2027-01-01T02:30"))
    with Sandbox(faults="none", seed=3, clock=clock) as sandbox, httpx.Client(timeout=10) as http:
        restore_parts(sandbox.world, _seeded.parts)
        w = _world(sandbox, clock, tmp_path, http, _seeded.seeded, monkeypatch)
        w.person.stripe_keys = list(_seeded.person[0])
        w.person.oauth_secrets = copy.deepcopy(_seeded.person[1])
        yield w
