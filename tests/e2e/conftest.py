"""A sandbox in the test process and the `rotate` CLI run as a subprocess against it.

The subprocess's clock starts at the simulated time through ROTATOR_FAKE_TIME, and the
sandbox's clock is set to the same moment before each command, so months and maintenance
windows can be crossed without waiting.
"""

from __future__ import annotations

import json
import os
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


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    clock = SimulatedClock(london("2027-01-01T02:30"))
    home = tmp_path / "state"
    with Sandbox(faults="none", seed=3, clock=clock) as sandbox, httpx.Client(timeout=10) as http:
        seeded = sandbox.seed_bandofbakers()
        inventory = sandbox_inventory(sandbox, tmp_path / "world", notify_email=False)
        env = {
            "ROTATOR_HOME": str(home),
            "ROTATOR_INVENTORY": str(inventory),
            **sandbox_environment(sandbox),
        }
        for var in ("ROTATOR_DATABASE_URL", "ROTATOR_MASTER_KEY", "ROTATOR_MASTER_KEY_FILE"):
            monkeypatch.delenv(var, raising=False)
        w = World(sandbox, clock, inventory, home, env, Person(sandbox.base_url, http), seeded)
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
        yield w
