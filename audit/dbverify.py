"""Verify the trail straight from the database, as `rotate audit verify` does without a file.

The same verifier as for an export reads the stored bytes in sequence order. Rows are
read as the database gives them, whatever their type: an entry stored as TEXT, a NULL,
a number in place of bytes is reported INVALID at its row, never a crash. The indexed
copy columns (hash, time, actor, secret, environment, rotation, type) are checked
against the entry's own bytes, so editing them to hide an event from `rotate audit log`
is found; with the audit MAC key each entry's MAC is checked too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import text
from sqlalchemy.orm import Session

from audit.entry import format_time
from audit.mac import check_mac
from audit.verify import NO_SINK_WARNING, Problem, TrailVerifier, VerifyResult, feed_sink
from rotator.clock import as_utc

_ROWS = (
    "SELECT seq, entry, entry_hash, time, actor, secret, environment, rotation_id, event_type "
    "FROM audit_event ORDER BY seq"
)
_MAX_COPY_PROBLEMS = 10_000
_CHECKPOINTS = "SELECT id, size, body FROM audit_checkpoint ORDER BY id"
_COPIES = (
    ("actor", "actor"),
    ("secret", "secret"),
    ("environment", "environment"),
    ("rotation_id", "rotation_id"),
    ("event_type", "type"),
)


def as_bytes(value: object) -> bytes | None:
    """Return a stored BLOB as bytes, or None when the column holds anything else."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, memoryview | bytearray):
        return bytes(value)
    return None


def _type_name(value: object) -> str:
    return "NULL" if value is None else "TEXT" if isinstance(value, str) else type(value).__name__


def _stand_in(value: object) -> bytes:
    # What the verifier hashes in place of a wrongly typed entry: its text if it has one,
    # so the chain around it is judged as usual, else nothing.
    return value.encode("utf-8", "replace") if isinstance(value, str) else b""


def _time_text(value: object) -> str | None:
    if isinstance(value, datetime):
        return format_time(as_utc(value))
    if isinstance(value, str):
        if len(value) == 26 and value[10] == " ":
            # SQLite's naive UTC text, as SQLAlchemy writes it: the common case, made cheap.
            return value[:10] + "T" + value[11:] + "Z"
        try:
            return _time_text(datetime.fromisoformat(value))
        except ValueError:
            return value
    return None


def copy_mismatches(row: Any, data: bytes, digest: bytes) -> list[str]:
    """Return the copy columns of `row` that disagree with the entry bytes `data`."""
    wrong: list[str] = []
    if row.entry_hash != digest.hex():
        wrong.append("entry_hash")
    try:
        entry = json.loads(data)
    except ValueError:
        return wrong
    if not isinstance(entry, dict):
        return wrong
    for column, key in _COPIES:
        if getattr(row, column) != entry.get(key):
            wrong.append(column)
    if _time_text(row.time) != entry.get("time"):
        wrong.append("time")
    return wrong


def _checkpoints(session: Session, verifier: TrailVerifier) -> Iterator[tuple[int, bytes]]:
    for row in session.connection().execute(text(_CHECKPOINTS)):
        body, size = as_bytes(row.body), row.size
        if body is None or type(size) is not int:
            verifier.report(
                Problem(
                    "checkpoint row",
                    row.id,
                    "malformed",
                    f"body is {_type_name(row.body)}, size is {_type_name(size)}",
                )
            )
            continue
        yield size, body


def verify_database(
    session: Session,
    public_key: Ed25519PublicKey,
    sink: Path | None = None,
    *,
    origin: str | None = None,
    on_problem: Callable[[Problem], None] | None = None,
    allow_unsigned_tail: bool = False,
    mac_key: bytes | None = None,
) -> VerifyResult:
    """Verify the stored chain, checkpoints, copy columns, MACs (with `mac_key`) and the sink."""
    verifier = TrailVerifier(
        public_key,
        origin=origin,
        position_label="row",
        on_problem=on_problem,
        allow_unsigned_tail=allow_unsigned_tail,
    )
    if sink is not None:
        feed_sink(verifier, sink)
    else:
        verifier.result.warnings.append(NO_SINK_WARNING)
    pending = iter(_checkpoints(session, verifier))
    next_cp = next(pending, None)
    checkpoints = 0
    unmacced: list[int] = []
    # Copy columns are judged last: an entry whose bytes were changed is reported once,
    # for its bytes, not again for the hash column that no longer matches them.
    copies: list[Problem] = []
    macced = False
    stream = session.connection().execute(text(_ROWS)).yield_per(5000)
    for rows, row in enumerate(stream, start=1):
        data = as_bytes(row.entry)
        if data is None:
            verifier.report(
                Problem(
                    "entry", row.seq, "malformed", f"stored as {_type_name(row.entry)}; row {rows}"
                )
            )
            verifier.entry(_stand_in(row.entry), rows)
        else:
            verifier.entry(data, rows)
            wrong = copy_mismatches(row, data, verifier.last_hash)
            if wrong and len(copies) < _MAX_COPY_PROBLEMS:
                copies.append(
                    Problem(
                        "entry",
                        row.seq,
                        "copy column mismatch",
                        f"{', '.join(wrong)} disagree with the entry; row {rows}",
                    )
                )
            if mac_key is not None:
                why = check_mac(mac_key, data)
                if why is None:
                    macced = True
                elif why == "no MAC" and not macced:
                    # Entries written before entry MACs existed; they are judged by the chain
                    # and the checkpoints alone (reported as a warning below).
                    unmacced.append(row.seq)
                else:
                    verifier.report(Problem("entry", row.seq, why, f"row {rows}"))
        seq = row.seq if type(row.seq) is int else 0
        while next_cp is not None and next_cp[0] <= seq:
            checkpoints += 1
            verifier.checkpoint(next_cp[1], checkpoints)
            next_cp = next(pending, None)
    while next_cp is not None:
        checkpoints += 1
        verifier.checkpoint(next_cp[1], checkpoints)
        next_cp = next(pending, None)
    result = verifier.finish()
    blamed = {(p.subject, p.number) for p in result.problems}
    for problem in copies:
        if ("entry", problem.number) not in blamed:
            verifier.report(problem)
    if unmacced:
        result.warnings.append(
            f"entries {unmacced[0]}..{unmacced[-1]} predate entry MACs: only the chain and "
            "the signed checkpoints vouch for them"
        )
    return result
