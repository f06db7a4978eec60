"""Append events to the audit trail inside the caller's transaction, and read them back.

The caller owns the transaction: `append` flushes but never commits, so the event and the
change it describes commit or roll back together. If the event cannot be written,
`AuditWriteError` is raised and the caller must not take the action (fail closed).

Appenders serialise on the head of the chain. On PostgreSQL `append` takes a
transaction-scoped advisory lock first; on SQLite the caller opens the transaction with
`BEGIN IMMEDIATE`, which already excludes other writers. The lock assumes READ COMMITTED
(PostgreSQL's default): under REPEATABLE READ a second appender would read a stale head,
and its insert then fails on the primary key, which is still a refusal, not a fork.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator, Mapping
from datetime import datetime
from functools import cache
from importlib import metadata
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from sqlmodel import col

from audit.entry import ZERO_HASH, encode_entry, entry_hash
from rotator.clock import as_utc, now
from rotator.errors import AuditWriteError
from rotator.store.models import AuditEvent

# "rotaudit" as a big-endian int64: one lock for the whole trail, shared by every process.
ADVISORY_LOCK_KEY = int.from_bytes(b"rotaudit", "big") & 0x7FFF_FFFF_FFFF_FFFF


@cache
def default_host() -> str:
    """Return this machine's host name as recorded in events."""
    return socket.gethostname()


@cache
def default_tool_version() -> str:
    """Return the installed rotator version, or "unknown" when run from a bare checkout."""
    try:
        return metadata.version("rotator")
    except metadata.PackageNotFoundError:
        return "unknown"


def lock_head(session: Session) -> None:
    """Serialise with other appenders until the transaction ends (PostgreSQL only)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})


def read_head(session: Session) -> tuple[int, str]:
    """Return `(seq, hash)` of the last entry, or `(0, ZERO_HASH)` for an empty trail."""
    row = session.execute(
        select(col(AuditEvent.seq), col(AuditEvent.entry_hash))
        .order_by(col(AuditEvent.seq).desc())
        .limit(1)
    ).first()
    if row is None:
        return 0, ZERO_HASH
    return int(row[0]), str(row[1])


def append(
    session: Session,
    *,
    event_type: str,
    actor: str,
    secret: str | None = None,
    environment: str | None = None,
    rotation_id: str | None = None,
    details: Mapping[str, Any] | None = None,
    host: str | None = None,
    tool_version: str | None = None,
) -> AuditEvent:
    """Append one event to the chain in the caller's transaction and flush it.

    Raises `TypeError` before touching the database if a field or the details could carry
    a secret value (a programming error), and `AuditWriteError` if the write fails.
    """
    moment = now()
    fields: dict[str, Any] = {
        "time": moment,
        "actor": actor,
        "event_type": event_type,
        "host": default_host() if host is None else host,
        "tool_version": default_tool_version() if tool_version is None else tool_version,
        "secret": secret,
        "environment": environment,
        "rotation_id": rotation_id,
        "details": details,
    }
    # Validate before locking, so a refused event never holds the trail's lock.
    encode_entry(seq=1, prev=ZERO_HASH, **fields)
    try:
        lock_head(session)
        head_seq, head_hash = read_head(session)
        stored = encode_entry(seq=head_seq + 1, prev=head_hash, **fields)
        event = AuditEvent(
            seq=head_seq + 1,
            entry=stored,
            entry_hash=entry_hash(head_hash, stored),
            time=moment,
            actor=actor,
            secret=secret,
            environment=environment,
            rotation_id=rotation_id,
            event_type=event_type,
        )
        session.add(event)
        session.flush()
    except (SQLAlchemyError, ValueError, OSError) as exc:
        raise AuditWriteError(
            f"the audit event {event_type!r} could not be written ({type(exc).__name__}); "
            "the action was not taken: check the database and retry"
        ) from exc
    return event


def iter_events(
    session: Session,
    *,
    secret: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    actor: str | None = None,
    event_type: str | None = None,
    batch: int = 1000,
) -> Iterator[AuditEvent]:
    """Yield events in sequence order, filtered on the indexed copy columns.

    `since` is inclusive and `until` exclusive; a naive time is taken as UTC. The copy
    columns are for finding events; what an event says is its stored `entry` bytes (see
    `audit.entry.decode_entry`).
    """
    query = select(AuditEvent).order_by(col(AuditEvent.seq))
    if secret is not None:
        query = query.where(col(AuditEvent.secret) == secret)
    if actor is not None:
        query = query.where(col(AuditEvent.actor) == actor)
    if event_type is not None:
        query = query.where(col(AuditEvent.event_type) == event_type)
    if since is not None:
        query = query.where(col(AuditEvent.time) >= as_utc(since))
    if until is not None:
        query = query.where(col(AuditEvent.time) < as_utc(until))
    yield from session.execute(query.execution_options(yield_per=batch)).scalars()
