"""Append events to the audit trail inside the caller's transaction, and read them back.

The caller owns the transaction: `append` flushes but never commits, so the event and the
change it describes commit or roll back together. If the event cannot be written,
`AuditWriteError` is raised and the caller must not take the action (fail closed).

Cost per event (issue 8): the head is read with one driver-level statement, then kept in
`session.info` for the next append in the same transaction, which holds the trail's lock
(the advisory lock on PostgreSQL, the write lock on SQLite once a row is inserted), so
the cached head stays true until the transaction ends. Session events drop it at every
commit, rollback (savepoints included) and close, so a rolled-back append never leaves a
stale head behind. The row goes in with one Core INSERT, and the entry is encoded once:
the bytes built to validate the event before locking get their `seq` and `prev` spliced
in, byte for byte what `encode_entry` returns for them.

Appenders serialise on the head of the chain. On PostgreSQL `append` takes a
transaction-scoped advisory lock first; on SQLite the caller opens the transaction with
`BEGIN IMMEDIATE`, which already excludes other writers. The lock assumes READ COMMITTED
(PostgreSQL's default): under REPEATABLE READ a second appender would read a stale head,
and its insert then fails on the primary key, which is still a refusal, not a fork.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator, Mapping
from datetime import datetime
from functools import cache
from importlib import metadata
from typing import Any

from sqlalchemy import event, insert, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, SessionTransaction
from sqlmodel import col

from audit.entry import ZERO_HASH, encode_entry, entry_hash
from audit.mac import ZERO_MAC, seal
from rotator.clock import as_utc, now
from rotator.errors import AuditWriteError
from rotator.store.models import AuditEvent

# "rotaudit" as a big-endian int64: one lock for the whole trail, shared by every process.
ADVISORY_LOCK_KEY = int.from_bytes(b"rotaudit", "big") & 0x7FFF_FFFF_FFFF_FFFF

# `session.info` key of the head cached by the last append: (root transaction, seq, hash).
_HEAD_KEY = "audit.trail.head"
_HEAD_SQL = "SELECT seq, entry_hash FROM audit_event ORDER BY seq DESC LIMIT 1"
_INSERT = insert(AuditEvent.__table__)  # type: ignore[attr-defined]
_HEX64 = re.compile(r"[0-9a-f]{64}")

# Markers of the top-level `prev` and `seq` in the bytes `encode_entry` returns for seq 1
# and ZERO_HASH. Keys are sorted and every key after "details" holds a scalar, and inside
# a JSON string each `"` follows a backslash, so the last match of each is the top level.
_PREV_MARK = b',"prev":"' + ZERO_HASH.encode() + b'","rotation_id":'
_SEQ_MARK = b',"seq":1,"time":"'


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


_MAC_KEYS: dict[str, bytes | None] = {}


def default_mac_key() -> bytes | None:
    """Return the audit MAC key of this installation, or None where the tool has no keys.

    An installation is a keys directory holding the audit signing key; its MAC key is
    created beside it on first use (`rotator.keys.load_audit_mac_key`). A process with no
    keys directory (a library user, a unit test) writes entries without a MAC, which a
    tool with keys then refuses to sign over.
    """
    from rotator.keys import AUDIT_FILE, load_audit_mac_key
    from rotator.paths import keys_dir

    where = keys_dir()
    cache_key = str(where)
    if cache_key not in _MAC_KEYS:
        if not (where / AUDIT_FILE).exists():
            return None
        _MAC_KEYS[cache_key] = load_audit_mac_key()
    return _MAC_KEYS[cache_key]


def lock_head(session: Session) -> None:
    """Serialise with other appenders until the transaction ends (PostgreSQL only).

    The wait is bounded (`ROTATOR_DB_BUSY_TIMEOUT`, as SQLite's): a session that holds
    the lock and never ends (a read-only login can take an advisory lock) must not hang
    every command. The message names who holds it.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    from sqlalchemy.exc import OperationalError

    from rotator.errors import StoreError
    from rotator.store.db import busy_timeout

    millis = max(1, int(busy_timeout() * 1000))
    session.execute(text(f"SET LOCAL lock_timeout = {millis}"))
    try:
        with session.begin_nested():
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
    except OperationalError as exc:
        if getattr(getattr(exc, "orig", None), "sqlstate", None) != "55P03":
            raise
        holder = _lock_holder(session)
        raise StoreError(
            f"the audit trail is locked by another session ({holder}) for more than "
            f"{millis / 1000:g} s; nothing was changed: end that session, or raise "
            "ROTATOR_DB_BUSY_TIMEOUT"
        ) from None


def _lock_holder(session: Session) -> str:
    """Name the PostgreSQL session holding the trail's advisory lock: user, host, pid."""
    try:
        row = session.execute(
            text(
                "SELECT a.usename, a.client_addr, a.pid, a.application_name FROM pg_locks l "
                "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' "
                "AND l.granted AND l.objid = (:key & 4294967295)"
            ),
            {"key": ADVISORY_LOCK_KEY},
        ).first()
    except SQLAlchemyError:
        return "a session that could not be named"
    if row is None:
        return "a session that has since let go"
    user, addr, pid, app = row
    return f"user {user} from {addr or 'a local socket'}, pid {pid}, {app or 'no application name'}"


def _forget_head(session: Session, *_args: Any) -> None:
    # `info` is created on first use; do not create it just to empty it.
    if "info" in session.__dict__:
        session.info.pop(_HEAD_KEY, None)


for _name in ("after_commit", "after_rollback", "after_soft_rollback", "after_transaction_end"):
    event.listen(Session, _name, _forget_head)


def _root(session: Session) -> SessionTransaction | None:
    return session.get_transaction()


def _locked_head(session: Session) -> tuple[int, str]:
    """Lock the trail, flush the session and return its head (cached in this transaction)."""
    cached = session.info.get(_HEAD_KEY)
    if cached is not None and cached[0] is _root(session):
        session.flush()
        return int(cached[1]), str(cached[2])
    lock_head(session)
    # Flush the caller's pending changes, as the ORM read of the head used to (autoflush):
    # if they cannot be written, neither is the event.
    session.flush()
    row = session.connection().exec_driver_sql(_HEAD_SQL).first()
    if row is None:
        return 0, ZERO_HASH
    head_hash = row[1]
    if not isinstance(head_hash, str) or not _HEX64.fullmatch(head_hash):
        raise ValueError("the stored head hash is not a lowercase hex SHA-256")
    return int(row[0]), head_hash


def _place(template: bytes, seq: int, prev: str) -> bytes:
    """Return `template` (the entry encoded as seq 1 after ZERO_HASH) as entry `seq`."""
    at_prev = template.rfind(_PREV_MARK)
    at_seq = template.rfind(_SEQ_MARK)
    if at_prev < 0 or at_seq < at_prev:
        raise ValueError("the audit entry does not have the expected shape")
    return b"".join(
        (
            template[:at_prev],
            b',"prev":"',
            prev.encode("ascii"),
            b'","rotation_id":',
            template[at_prev + len(_PREV_MARK) : at_seq],
            b',"seq":',
            str(seq).encode("ascii"),
            b',"time":"',
            template[at_seq + len(_SEQ_MARK) :],
        )
    )


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
    mac_key: bytes | None = None,
) -> AuditEvent:
    """Append one event to the chain in the caller's transaction and flush it.

    Every string in the details is scrubbed of values this process has held
    (`rotator.redact`) first. The entry is sealed with `mac_key`, by default this
    installation's audit MAC key (`default_mac_key`). Raises `TypeError` before touching
    the database if a field or the details could carry a secret value (a programming
    error), and `AuditWriteError` if the write fails.
    """
    from rotator.redact import scrub_json

    key = default_mac_key() if mac_key is None else mac_key
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
        "details": scrub_json(details) if details is not None else None,
    }
    # Validate (and encode) before locking, so a refused event never holds the trail's lock.
    template = encode_entry(seq=1, prev=ZERO_HASH, mac=None if key is None else ZERO_MAC, **fields)
    try:
        head_seq, head_hash = _locked_head(session)
        seq = head_seq + 1
        stored = _place(template, seq, head_hash)
        if key is not None:
            stored = seal(key, stored)
        digest = entry_hash(head_hash, stored)
        row: dict[str, Any] = {
            "seq": seq,
            "entry": stored,
            "entry_hash": digest,
            "time": moment,
            "actor": actor,
            "secret": secret,
            "environment": environment,
            "rotation_id": rotation_id,
            "event_type": event_type,
        }
        session.connection().execute(_INSERT, row)
        session.info[_HEAD_KEY] = (_root(session), seq, digest)
    except (SQLAlchemyError, ValueError, OSError) as exc:
        session.info.pop(_HEAD_KEY, None)
        raise AuditWriteError(
            f"the audit event {event_type!r} could not be written ({type(exc).__name__}); "
            "the action was not taken: check the database and retry"
        ) from exc
    return AuditEvent(**row)


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


APPROVAL_EVENT_TYPES = {"approval": "rotation.approved", "review": "rotation.reviewed"}


def authenticated_approvals(
    session: Session, rotation_id: str, *, kind: str, mac_key: bytes | None = None
) -> list[dict[str, Any]]:
    """Return the approvals (`kind="approval"`) or reviews (`"review"`) of a rotation that count.

    Only entries of the trail count, and only those with a valid MAC under the audit MAC
    key (by default this installation's): a row inserted into the `approval` table, or a
    chained entry inserted into the trail by a database writer, grants nothing. The copy
    columns only find candidates; the entry's own bytes must name the rotation and type.
    Each result is the decoded entry (`seq`, `time`, `actor`, `details`...), oldest first.
    Without a MAC key nothing can be authenticated, so the list is empty.
    """
    from audit.entry import decode_entry
    from audit.mac import check_mac

    event_type = APPROVAL_EVENT_TYPES.get(kind)
    if event_type is None:
        raise ValueError(f"kind is one of {sorted(APPROVAL_EVENT_TYPES)}, not {kind!r}")
    key = default_mac_key() if mac_key is None else mac_key
    if key is None:
        return []
    rows = session.execute(
        select(col(AuditEvent.entry))
        .where(col(AuditEvent.rotation_id) == rotation_id)
        .where(col(AuditEvent.event_type) == event_type)
        .order_by(col(AuditEvent.seq))
    ).scalars()
    found: list[dict[str, Any]] = []
    for stored in rows:
        if isinstance(stored, memoryview):
            stored = stored.tobytes()
        if not isinstance(stored, bytes) or check_mac(key, stored) is not None:
            continue
        try:
            entry = decode_entry(stored)
        except ValueError:
            continue
        if entry.get("rotation_id") == rotation_id and entry.get("type") == event_type:
            found.append(entry)
    return found
