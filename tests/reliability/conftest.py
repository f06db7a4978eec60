"""Prepared states for the bad-input catalogue: built once in-process, copied per test.

Each prepared state is a directory (`world/`: inventory, service-account key, `.env.local`,
checkpoint sink; `state/`: keys and `rotator.db`) with its own sandbox, kept running for
the session at the moment the state was reached. A test copies the directory, rewrites the
paths in the copied inventory, and runs the `rotate` CLI against the copy as a subprocess,
so every test starts from the same state and none sees another's writes.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
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
STRIPE = "BANDOFBAKERS_STRIPE_SECRET_KEY"
RESEND = "BANDOFBAKERS_RESEND_API_KEY"
GCP = "BANDOFBAKERS_GCP_IDENTITY_PLATFORM_API_KEY"
GOOGLE = "GOOGLE_CLIENT_SECRET"
SHARED = (RESEND, STRIPE, GCP)
# Tables that record what happened rather than what is: compared separately.
HISTORY_TABLES = ("audit_event", "audit_checkpoint", "notification_log")


def london(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=LONDON)


@dataclass
class PreparedState:
    """One prepared directory, the sandbox it talks to, and the moment it was left at."""

    name: str
    root: Path
    sandbox: Sandbox
    clock: SimulatedClock
    env: dict[str, str]
    seeded: dict[str, Any]
    person: Person


@dataclass
class Case:
    """A private copy of a prepared state and the `rotate` CLI pointed at it."""

    state: PreparedState
    root: Path
    env: dict[str, str]
    outputs: list[str] = field(default_factory=list)

    @property
    def home(self) -> Path:
        return self.root / "state"

    @property
    def db(self) -> Path:
        return self.home / "rotator.db"

    @property
    def inventory(self) -> Path:
        return self.root / "world" / "inventory.toml"

    def rotate(
        self, *args: str, input: str | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        full = {
            **os.environ,
            **self.env,
            "ROTATOR_FAKE_TIME": self.state.clock().isoformat(),
            "ROTATOR_ACTOR": "tester@reliability",
            **(env or {}),
        }
        done = subprocess.run(
            [sys.executable, "-m", "rotator", *args],
            input=input,
            capture_output=True,
            text=True,
            env=full,
            timeout=120,
            check=False,
        )
        self.outputs.extend([done.stdout, done.stderr])
        return done

    def rows(self) -> list[tuple[str, tuple[Any, ...]]]:
        """Every row of every table except the history tables, sorted."""
        return dump_rows(self.db)

    def audit_types(self) -> list[str]:
        return [t for (t,) in _query(self.db, "SELECT event_type FROM audit_event ORDER BY seq")]


def _query(db: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return list(conn.execute(sql))
    finally:
        conn.close()


def dump_rows(db: Path) -> list[tuple[str, tuple[Any, ...]]]:
    tables = [
        name
        for (name,) in _query(db, "SELECT name FROM sqlite_master WHERE type = 'table'")
        if name not in HISTORY_TABLES and not name.startswith("sqlite_")
    ]
    rows: list[tuple[str, tuple[Any, ...]]] = []
    for table in sorted(tables):
        rows += [(table, tuple(r)) for r in _query(db, f'SELECT * FROM "{table}"')]
    return sorted(rows, key=repr)


@contextmanager
def _build(name: str, root: Path, until: str, mp: pytest.MonkeyPatch) -> Iterator[PreparedState]:
    """Seed a sandbox, import its values and walk the quarter in-process up to `until`."""
    from rotator import clock as rotator_clock
    from rotator import commands
    from rotator import inventory as inv_mod
    from rotator.engine import Engine
    from rotator.keys import init_keys
    from rotator.runtime import Runtime
    from rotator.secret import Secret

    sim = SimulatedClock(london("2027-01-01T02:30"))
    with (
        Sandbox(faults="none", seed=5, clock=sim) as sandbox,
        httpx.Client(timeout=10) as http,
        rotator_clock.simulated(sim),
    ):
        seeded = sandbox.seed_bandofbakers()
        inventory = sandbox_inventory(sandbox, root / "world", notify_email=False)
        env = {
            "ROTATOR_HOME": str(root / "state"),
            "ROTATOR_INVENTORY": str(inventory),
            **sandbox_environment(sandbox),
        }
        for var in ("ROTATOR_DATABASE_URL", "ROTATOR_MASTER_KEY", "ROTATOR_MASTER_KEY_FILE"):
            mp.delenv(var, raising=False)
        for key, value in env.items():
            mp.setenv(key, value)
        person = Person(sandbox.base_url, http)
        inv = inv_mod.load(inventory)
        runtimes: list[Runtime] = []

        def engine(actor: str) -> Engine:
            mp.setenv("ROTATOR_ACTOR", actor)
            rt = Runtime(inventory=inv, clock=sim, sleep=sim.sleep)
            runtimes.append(rt)
            return Engine(rt)

        init_keys()
        ops = engine("ops@prepare")
        for label, value in seeded.items():
            secret, _, scope = label.partition("@")
            unit = ops.unit(secret, scope or None)
            commands.import_value(ops, unit, Secret(value.value), value.ref)
            if secret == STRIPE:
                person.stripe_keys.append(value.ref)
            if secret == GOOGLE:
                person.oauth_secrets.setdefault(value.options["client_id"], []).append(value.ref)
        engine("cron@prepare").run()
        if until != "q1":
            ops = engine("ops@prepare")
            stripe_value = person.create(STRIPE, None)
            commands.supply(ops, ops.unit(STRIPE, None), Secret(stripe_value))
            for env_name in ("local", "staging", "production"):
                unit = ops.unit(GOOGLE, env_name)
                client_id = unit.spec.options_for(env_name)["client_id"]
                commands.supply(ops, unit, Secret(person.create(GOOGLE, client_id)))
            owner = engine("owner@prepare")
            for secret in SHARED:
                commands.approve(owner, owner.unit(secret, None), "q1")
            commands.approve(owner, owner.unit(GOOGLE, "production"), "q1")
            for moment in ("2027-02-01T02:30", "2027-03-02T02:30"):
                sim.set(london(moment))
                engine("cron@prepare").run()
        for rt in runtimes:
            rt.close()
        yield PreparedState(name, root, sandbox, sim, env, seeded, person)


@pytest.fixture(scope="session")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, PreparedState]]:
    """`q1`: 2027-01-01 02:30 after the first run (Resend and GCP staged, Stripe and Google
    awaiting a person). `promoted`: 2027-03-02 02:30, every unit promoted."""
    states: dict[str, PreparedState] = {}
    with ExitStack() as stack, pytest.MonkeyPatch.context() as mp:
        for name in ("q1", "promoted"):
            root = tmp_path_factory.mktemp(f"prepared-{name}")
            states[name] = stack.enter_context(_build(name, root, name, mp))
        mp.undo()
        yield states


def copy_state(state: PreparedState, dest: Path) -> Case:
    """Copy a prepared state to `dest` and point the copy's inventory at its own files."""
    shutil.copytree(state.root, dest, symlinks=True)
    inventory = dest / "world" / "inventory.toml"
    inventory.write_text(inventory.read_text().replace(str(state.root), str(dest)))
    env = {**state.env, "ROTATOR_HOME": str(dest / "state"), "ROTATOR_INVENTORY": str(inventory)}
    return Case(state, dest, env)


@pytest.fixture
def q1(prepared: dict[str, PreparedState], tmp_path: Path) -> Case:
    return copy_state(prepared["q1"], tmp_path / "q1")


@pytest.fixture
def promoted(prepared: dict[str, PreparedState], tmp_path: Path) -> Case:
    return copy_state(prepared["promoted"], tmp_path / "promoted")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("ROTATOR_DATABASE_URL", "ROTATOR_MASTER_KEY", "ROTATOR_MASTER_KEY_FILE"):
        monkeypatch.delenv(var, raising=False)


def expect(
    case: Case,
    *args: str,
    code: int,
    message: str,
    refused: bool = False,
    input: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a bad command; check its exit code, its message, and that nothing changed.

    Nothing changed: every row of every table but the history tables is the same, and
    the audit trail gained exactly one `command.refused` event for a refused command and
    nothing otherwise.
    """
    rows = case.rows()
    events = case.audit_types()
    done = case.rotate(*args, input=input, env=env)
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    assert message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert case.rows() == rows
    assert case.audit_types() == events + (["command.refused"] if refused else [])
    return done


__all__ = ["Case", "PreparedState", "copy_state", "dump_rows", "expect", "london"]
