"""Random commands and clock jumps against the engine: the invariants of DESIGN.md §4 hold.

A hypothesis state machine drives the real engine (in-process, SQLite) with two fake
providers (one automated, one operator-assisted) and dotenv targets, and checks after
every step: no step ran before its gate, a refused command changed nothing, and no
secret ever had more than two live credentials at its provider.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from providers.base import Capabilities, Generated, Provider, ProviderContext
from rotator import clock as rotator_clock
from rotator import commands
from rotator import inventory as inv_mod
from rotator.demo import SimulatedClock
from rotator.engine import Engine
from rotator.errors import NeedsPersonError, ProviderRefusedError, RefusedError
from rotator.keys import init_keys
from rotator.runtime import Runtime
from rotator.secret import Secret
from schedules import month_gate, parse_cycle_id, parse_window

LONDON = ZoneInfo("Europe/London")
WINDOW = parse_window(["tue", "wed", "thu"], "02:00", "04:00", "Europe/London")
MONTH_OF_STEP = {"generate": 1, "stage": 1, "validate": 2, "promote": 3, "revoke": 4}
AUTO, ASSISTED = "AUTO_KEY", "ASSISTED_KEY"


class FakeKeys:
    """A provider's record of live credentials, remembering the most ever live at once."""

    def __init__(self) -> None:
        self.live: dict[str, str] = {}
        self.most = 0
        self.counter = 0

    def create(self, ref: str) -> str:
        self.counter += 1
        value = f"fake-{self.counter:06d}-{ref}"
        self.live[ref] = value
        self.most = max(self.most, len(self.live))
        return value


class AutoProvider(Provider):
    name = "resend"
    capabilities = Capabilities(True, True, True, 2)
    keys: ClassVar[FakeKeys]

    def generate(self, ctx: ProviderContext) -> Generated:
        ref = f"k-{ctx.rotation_id}"
        value = self.keys.live.get(ref) or self.keys.create(ref)
        return Generated(Secret(value), ref)

    def validate(self, ctx: ProviderContext, value: Secret) -> None:
        if value.reveal() not in self.keys.live.values():
            raise ProviderRefusedError("unknown key", provider=self.name, operation="validate")

    def revoke(
        self, ctx: ProviderContext, ref: str, value: Secret | None
    ) -> Mapping[str, str] | None:
        self.keys.live.pop(ref, None)
        return None

    def verify_revoked(self, ctx: ProviderContext, ref: str, value: Secret) -> bool:
        return value.reveal() not in self.keys.live.values()


class AssistedProvider(AutoProvider):
    name = "stripe"
    capabilities = Capabilities(False, False, True, None)

    def generate(self, ctx: ProviderContext) -> Generated:
        raise NeedsPersonError("create a key in the console", provider=self.name)

    def accept_supplied(self, ctx: ProviderContext, value: Secret) -> Generated:
        self.validate(ctx, value)
        ref = next(r for r, v in self.keys.live.items() if v == value.reveal())
        return Generated(value, ref)

    def revoke(
        self, ctx: ProviderContext, ref: str, value: Secret | None
    ) -> Mapping[str, str] | None:
        raise NeedsPersonError("expire the old key in the console", provider=self.name)


def _inventory(base: Path) -> inv_mod.Inventory:
    envs = {
        name: {
            "url": f"https://{name}.example",
            "require_approval": name == "production",
            "targets": [{"kind": "dotenv", "path": str(base / f"{name}.env")}],
        }
        for name in ("staging", "production")
    }
    data = {
        "settings": {"time_zone": "Europe/London"},
        "maintenance_window": {"days": ["tue", "wed", "thu"], "start": "02:00", "end": "04:00"},
        "environments": envs,
        "secrets": {
            AUTO: {"provider": "resend", "scope": "shared"},
            ASSISTED: {"provider": "stripe", "scope": "shared"},
        },
    }
    return inv_mod.parse(data, base / "inventory.toml")


def _snapshot(db: Path) -> list[tuple[str, tuple[Any, ...]]]:
    """Every row of every table but the audit trail's and the notification log."""
    skip = {"audit_event", "audit_checkpoint", "notification_log", "alembic_version"}
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        rows: list[tuple[str, tuple[Any, ...]]] = []
        for table in sorted(set(tables) - skip):
            rows += [(table, tuple(r)) for r in conn.execute(f'SELECT * FROM "{table}"')]
    return sorted(rows, key=repr)


class RotationMachine(RuleBasedStateMachine):
    @initialize(start_day=st.integers(min_value=0, max_value=360))
    def setup(self, start_day: int) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="rotator-prop-"))
        self.saved = {k: os.environ.get(k) for k in ("ROTATOR_HOME", "ROTATOR_ACTOR")}
        os.environ["ROTATOR_HOME"] = str(self.dir / "state")
        os.environ["ROTATOR_ACTOR"] = "property@test"
        init_keys()
        self.clock = SimulatedClock(
            datetime(2027, 1, 1, 2, 30, tzinfo=LONDON) + timedelta(days=start_day)
        )
        # The audit trail reads rotator's one clock: it must tell the simulated time too.
        self.simulated = rotator_clock.simulated(self.clock)
        self.simulated.__enter__()
        self.inv = _inventory(self.dir)
        self.auto_keys, self.assisted_keys = FakeKeys(), FakeKeys()
        auto = AutoProvider()
        auto.keys = self.auto_keys
        assisted = AssistedProvider()
        assisted.keys = self.assisted_keys
        self.rt = Runtime(inventory=self.inv, clock=self.clock, sleep=self.clock.sleep)
        self.rt._providers.update({"resend": auto, "stripe": assisted})
        self.engine = Engine(self.rt)
        for name, keys in ((AUTO, self.auto_keys), (ASSISTED, self.assisted_keys)):
            value = keys.create("initial")
            commands.import_value(
                self.engine, self.engine.unit(name, None), Secret(value), "initial"
            )
        self.seen_events = 0

    def teardown(self) -> None:
        if hasattr(self, "simulated"):
            self.simulated.__exit__(None, None, None)
        if hasattr(self, "rt"):
            self.rt.close()
        for k, v in getattr(self, "saved", {}).items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if hasattr(self, "dir"):
            shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def db(self) -> Path:
        return self.dir / "state" / "rotator.db"

    def _command(self, fn: Any, *args: Any) -> None:
        """Run an operator command; a refusal must change nothing but the audit trail."""
        before = _snapshot(self.db)
        try:
            fn(self.engine, *args)
        except RefusedError:
            assert _snapshot(self.db) == before, "a refused command changed the store"

    # ------------------------------------------------------------------ rules
    @rule(hours=st.integers(min_value=1, max_value=24 * 35))
    def time_passes(self, hours: int) -> None:
        self.clock.sleep(hours * 3600)

    @rule()
    def cron_run(self) -> None:
        self.engine.run()

    @rule(secret=st.sampled_from([AUTO, ASSISTED]))
    def emergency(self, secret: str) -> None:
        unit = self.engine.unit(secret, None)
        rid = commands.start_emergency(self.engine, unit, "property test leak", again=True)
        commands.drive(self.engine, rid)

    @rule()
    def person_supplies(self) -> None:
        unit = self.engine.unit(ASSISTED, None)
        # A person deletes unused old keys first where asked, keeping at most one live.
        value = self.assisted_keys.create(f"console-{self.assisted_keys.counter}")
        self._command(commands.supply, unit, Secret(value))
        if value not in self._stored_fingerprints_values():
            self.assisted_keys.live = {
                r: v for r, v in self.assisted_keys.live.items() if v != value
            }

    def _stored_fingerprints_values(self) -> set[str]:
        with self.rt.store.read() as s:
            from sqlmodel import select

            from rotator.store.models import CredentialVersion

            rows = s.exec(select(CredentialVersion).where(CredentialVersion.state != "revoked"))
            refs = {v.provider_ref for v in rows}
        return {v for r, v in self.assisted_keys.live.items() if r in refs}

    @rule()
    def person_revokes_and_confirms(self) -> None:
        unit = self.engine.unit(ASSISTED, None)
        with self.rt.store.read() as s:
            from sqlmodel import select

            from rotator.store.models import CredentialVersion

            keep = {
                v.provider_ref
                for v in s.exec(select(CredentialVersion))
                if v.state in ("current", "pending")
            }
        self.assisted_keys.live = {r: v for r, v in self.assisted_keys.live.items() if r in keep}
        self._command(commands.confirm, unit, "revoke")

    @rule(secret=st.sampled_from([AUTO, ASSISTED]))
    def approve(self, secret: str) -> None:
        self._command(commands.approve, self.engine.unit(secret, None), "ok")

    @rule(secret=st.sampled_from([AUTO, ASSISTED]))
    def review(self, secret: str) -> None:
        self._command(commands.review, self.engine.unit(secret, None), "reviewed")

    @rule(secret=st.sampled_from([AUTO, ASSISTED]), abort=st.booleans())
    def rollback(self, secret: str, abort: bool) -> None:
        unit = self.engine.unit(secret, None)
        before = _snapshot(self.db)
        try:
            commands.rollback(self.engine, unit, "property test", abort=abort)
        except RefusedError:
            assert _snapshot(self.db) == before
        except NeedsPersonError:
            pass

    # ------------------------------------------------------------------ invariants
    @invariant()
    def at_most_two_live(self) -> None:
        if hasattr(self, "auto_keys"):
            assert self.auto_keys.most <= 2, self.auto_keys.live

    @invariant()
    def no_step_before_its_gate(self) -> None:
        if not hasattr(self, "dir"):
            return
        with sqlite3.connect(self.db) as conn:
            rows = conn.execute(
                "SELECT seq, entry FROM audit_event WHERE seq > ? ORDER BY seq", (self.seen_events,)
            ).fetchall()
            cycles = dict(
                conn.execute("SELECT id, cycle FROM rotation WHERE cycle IS NOT NULL").fetchall()
            )
        for seq, raw in rows:
            self.seen_events = seq
            entry = json.loads(raw)
            if entry["type"] != "step.done" or entry["rotation_id"] not in cycles:
                continue
            step = entry["details"]["step"]
            if step not in MONTH_OF_STEP:
                continue
            at = datetime.fromisoformat(entry["time"].replace("Z", "+00:00"))
            cycle = parse_cycle_id(cycles[entry["rotation_id"]])
            assert at >= month_gate(cycle, MONTH_OF_STEP[step], LONDON), (step, at, cycle.id)
            if step == "promote":
                assert WINDOW.contains(at), ("promote outside the window", at)


RotationMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("ROTATOR_PROPERTY_EXAMPLES", "25")),
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestRotationMachine = RotationMachine.TestCase
