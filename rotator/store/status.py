"""The reads behind `rotate status`: one builder of the rows, two ways to read the rows in.

`status(engine)` reads through the engine's session (any database, every case).
`read_status(inventory, now)` reads a current SQLite file with the standard library's
`sqlite3` alone, so `rotate status` does not import SQLModel, SQLAlchemy or the models
(about 0.3 s of its start-up, issue 19). It returns None whenever only the full path can
answer: no file yet (the full path creates it), a URL that is not a plain SQLite file, a
schema at another revision (the full path upgrades or refuses it), a rotation whose next
step needs the machine's facts (`validated`: is an approval due?), or any SQLite error
(the full path then names it). Both give the same rows; a test compares them.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from rotator import machine as m
from rotator.clock import as_utc
from rotator.store.location import SCHEMA_REVISION, database_url, sqlite_file

if TYPE_CHECKING:
    from rotator.engine import Engine
    from rotator.inventory import Inventory, SecretSpec

CURRENT = "current"
"""`repository.CURRENT`, without importing the repository (a test checks they agree)."""
FAILURES_SHOWN = 20


class _UnitLike(Protocol):
    @property
    def spec(self) -> SecretSpec: ...

    @property
    def scope_env(self) -> str: ...


class _RotationLike(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def cycle(self) -> str | None: ...

    @property
    def state(self) -> str: ...

    @property
    def facts(self) -> str: ...

    @property
    def last_error(self) -> str | None: ...

    @property
    def next_check_at(self) -> datetime | None: ...


Decide = Callable[[Any, Any], "tuple[str, str] | None"]
"""(rotation, unit) -> (action, command) when a human gate of a validated rotation is open."""


def build_rows(
    units: Iterable[_UnitLike],
    records: Mapping[tuple[str, str], int],
    current_since: Mapping[int, datetime],
    active: Mapping[int, list[Any]],
    now: datetime,
    decide: Decide,
) -> list[dict[str, Any]]:
    """Describe every unit: provider, scope, age of its current value, rotation in flight."""
    rows = []
    for unit in units:
        record_id = records.get((unit.spec.name, unit.scope_env))
        since = current_since.get(record_id) if record_id else None
        env_flag = "" if unit.scope_env == "shared" else f" --env {unit.scope_env}"
        in_flight = []
        for r in active.get(record_id, []) if record_id else []:
            facts = json.loads(r.facts or "{}")
            instruction = facts.get("instruction") if r.state in m.PERSON_STATES else None
            person = m.needs_person(r.kind, r.state)
            if r.state == m.VALIDATED:
                # A human gate (approval) is a person's turn too, once its month opens.
                gate = decide(r, unit)
                if gate is not None:
                    action, command = gate
                    person = True
                    instruction = f"{action}: run {command}"
            if r.state == m.FAILED and not instruction:
                instruction = (
                    f"{r.last_error}\nFix the cause, then run: "
                    f"rotate resume {unit.spec.name}{env_flag}"
                )
            in_flight.append(
                {
                    "rotation": r.id,
                    "kind": r.kind,
                    "cycle": r.cycle,
                    "state": r.state,
                    "needs_person": person,
                    "failed": r.state == m.FAILED,
                    "serves_compromised": bool(facts.get("serves_compromised"))
                    and r.state == m.FAILED,
                    "last_error": r.last_error,
                    "instruction": instruction,
                    "next_check_at": as_utc(r.next_check_at).isoformat()
                    if r.next_check_at
                    else None,
                }
            )
        rows.append(
            {
                "secret": unit.spec.name,
                "scope": unit.scope_env,
                "provider": unit.spec.provider,
                "environments": list(unit.spec.deploy_envs(unit.scope_env)),
                "current": since is not None,
                "current_since": since.isoformat() if since else None,
                "age_days": round((now - since).total_seconds() / 86400, 1) if since else None,
                "rotations": in_flight,
            }
        )
    return rows


def attach_failures(rows: list[dict[str, Any]], failures: list[dict[str, Any]]) -> None:
    for row in rows:
        row["notification_failures"] = [
            f for f in failures if f["secret"] == row["secret"] and f["scope"] == row["scope"]
        ]


# ---------------------------------------------------------------------- the full path
def status(engine: Engine) -> list[dict[str, Any]]:
    """Describe every unit through the engine's session (any database)."""
    from sqlmodel import col, select

    from rotator import repository as repo
    from rotator.notify import notification_failures
    from rotator.store.models import CredentialVersion, Rotation, SecretRecord

    rt = engine.rt
    now = rt.clock()
    with rt.store.read() as s:
        records = {(r.name, r.scope_env): r.id for r in s.exec(select(SecretRecord)).all()}
        current = {
            v.secret_id: as_utc(v.promoted_at or v.created_at)
            for v in s.exec(
                select(CredentialVersion).where(CredentialVersion.state == repo.CURRENT)
            )
        }
        active: dict[int, list[Rotation]] = {}
        for r in s.exec(
            select(Rotation)
            .where(col(Rotation.active).is_(True))
            .order_by(col(Rotation.created_at))
        ):
            active.setdefault(r.secret_id, []).append(r)

        def decide(rotation: Rotation, unit: Any) -> tuple[str, str] | None:
            decision = m.next_decision(engine.facts(s, rotation, unit, now))
            if not isinstance(decision, m.AwaitPerson):
                return None
            env = "" if unit.scope_env == "shared" else f" --env {unit.scope_env}"
            return decision.action, decision.command.format(secret=unit.spec.name, env=env)

        rows = build_rows(
            engine.units(),
            {k: v for k, v in records.items() if v is not None},
            current,
            active,
            now,
            decide,
        )
    attach_failures(rows, notification_failures(engine, FAILURES_SHOWN))
    return rows


# ---------------------------------------------------------------------- the sqlite3 path
@dataclass(frozen=True)
class _Unit:
    spec: SecretSpec
    scope_env: str


@dataclass(frozen=True)
class _Rotation:
    id: str
    kind: str
    cycle: str | None
    state: str
    facts: str
    last_error: str | None
    next_check_at: datetime | None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


class _NeedsFullPath(Exception):
    pass


def _defer(_rotation: Any, _unit: Any) -> tuple[str, str] | None:
    raise _NeedsFullPath


def _when(text: str | None) -> datetime | None:
    # SQLAlchemy stores a SQLite DateTime as "YYYY-MM-DD HH:MM:SS.ffffff", UTC without an
    # offset; SQLModel's `UTCDateTime` reads it back aware, in UTC: so does this.
    return as_utc(datetime.fromisoformat(text)) if text else None


def read_status(
    inventory: Inventory, now: datetime, url: str | None = None
) -> list[dict[str, Any]] | None:
    """Return `status`'s rows read with sqlite3 alone, or None when the full path must answer."""
    path = sqlite_file(url or database_url())
    if path is None or not path.is_file():
        return None
    units = [
        _Unit(spec, env)
        for spec in inventory.secrets.values()
        for env in spec.scope_envs(inventory)
    ]
    try:
        # Read-only: this path never creates, upgrades or locks anything.
        conn = sqlite3.connect(
            f"{path.absolute().as_uri()}?mode=ro", uri=True, isolation_level=None
        )
        with closing(conn):
            conn.execute("BEGIN")  # one snapshot for every read below, as the session has
            revision = conn.execute("SELECT version_num FROM alembic_version").fetchone()
            if revision is None or revision[0] != SCHEMA_REVISION:
                return None
            records = {
                (name, scope): rid
                for rid, name, scope in conn.execute("SELECT id, name, scope_env FROM secret")
            }
            current: dict[int, datetime] = {}
            for secret_id, promoted, created in conn.execute(
                "SELECT secret_id, promoted_at, created_at FROM credential_version WHERE state = ?",
                (CURRENT,),
            ):
                since = _when(promoted or created)
                if since is not None:
                    current[secret_id] = since
            active: dict[int, list[_Rotation]] = {}
            for secret_id, *fields in conn.execute(
                "SELECT secret_id, id, kind, cycle, state, facts, last_error, next_check_at "
                "FROM rotation WHERE active = 1 ORDER BY created_at"
            ):
                rid, kind, cycle, state, facts, last_error, next_check = fields
                rotation = _Rotation(rid, kind, cycle, state, facts, last_error, _when(next_check))
                active.setdefault(secret_id, []).append(rotation)
            failures = []
            for time, entry, secret, environment in conn.execute(
                "SELECT time, entry, secret, environment FROM audit_event "
                "WHERE event_type = 'notification.failed' ORDER BY seq DESC LIMIT ?",
                (FAILURES_SHOWN,),
            ):
                details = json.loads(entry).get("details", {})
                failures.append({
                    "time": _iso(_when(time)),
                    "channel": details.get("channel"),
                    "notification": details.get("notification"),
                    "error": details.get("error"), "secret": secret, "scope": environment,
                })  # fmt: skip
    except (sqlite3.Error, ValueError):
        return None
    try:
        rows = build_rows(units, records, current, active, now, _defer)
    except _NeedsFullPath:
        return None
    attach_failures(rows, failures)
    return rows
