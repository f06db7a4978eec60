"""Write the trail as a JSON Lines export an auditor verifies offline with `audit.verify`.

Line 1 is a header. Then every entry line is the stored entry bytes verbatim (they are
already one line of canonical JSON), so the verifier hashes exactly what the database
holds. Each checkpoint follows the entry it covers, as `{"checkpoint":"<base64 note>"}`.
Rows are streamed, never loaded all at once.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlmodel import col

from audit.verify import EXPORT_FORMAT, EXPORT_VERSION
from rotator.store.models import AuditCheckpoint, AuditEvent

__all__ = [
    "ExportSummary",
    "checkpoint_line",
    "export",
    "export_header",
    "interleave",
    "list_checkpoints",
    "stream_entries",
    "write_export",
]


@dataclass(frozen=True)
class ExportSummary:
    """How much an export holds."""

    entries: int
    checkpoints: int


def export_header(origin: str, public_key_pem: str | bytes, key_name: str) -> bytes:
    """Return the header line (with its newline); informative, never trusted by the verifier."""
    pem = public_key_pem.decode() if isinstance(public_key_pem, bytes) else public_key_pem
    header = {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "origin": origin,
        "public_keys": [{"name": key_name, "pem": pem}],
    }
    return json.dumps(header, separators=(",", ":")).encode() + b"\n"


def checkpoint_line(note: bytes) -> bytes:
    """Return the export line that carries one signed checkpoint note."""
    return b'{"checkpoint":"' + base64.b64encode(note) + b'"}\n'


def write_export(
    out: BinaryIO,
    header: bytes,
    entries: Iterable[tuple[int, bytes]],
    checkpoints: Iterable[tuple[int, bytes]],
) -> ExportSummary:
    """Write header, `(seq, bytes)` entries and `(size, note)` checkpoints, merged by position.

    Checkpoints must come in the order they were made; one whose size the trail never
    reaches is written at the end, where the verifier reports it.
    """
    out.write(header)
    n_entries = n_checkpoints = 0
    for is_entry, data in interleave(entries, checkpoints):
        if is_entry:
            out.write(data + b"\n")
            n_entries += 1
        else:
            out.write(checkpoint_line(data))
            n_checkpoints += 1
    return ExportSummary(n_entries, n_checkpoints)


def interleave(
    entries: Iterable[tuple[int, bytes]], checkpoints: Iterable[tuple[int, bytes]]
) -> Iterator[tuple[bool, bytes]]:
    """Yield `(True, entry)` and `(False, note)` with each checkpoint after the entry it covers."""
    pending = iter(checkpoints)
    next_cp = next(pending, None)
    for seq, stored in entries:
        yield True, stored
        while next_cp is not None and next_cp[0] <= seq:
            yield False, next_cp[1]
            next_cp = next(pending, None)
    while next_cp is not None:
        yield False, next_cp[1]
        next_cp = next(pending, None)


def export(
    session: Session,
    out: BinaryIO,
    *,
    origin: str,
    public_key_pem: str | bytes,
    key_name: str,
    batch: int = 5000,
) -> ExportSummary:
    """Stream the whole trail and its checkpoints from the database to `out`."""
    header = export_header(origin, public_key_pem, key_name)
    return write_export(out, header, stream_entries(session, batch), list_checkpoints(session))


def list_checkpoints(session: Session) -> list[tuple[int, bytes]]:
    """Return `(size, note)` of every stored checkpoint in the order made."""
    # Checkpoints are few (one per command or per thousand events), so a list is fine.
    rows = session.execute(
        select(col(AuditCheckpoint.size), col(AuditCheckpoint.body)).order_by(
            col(AuditCheckpoint.id)
        )
    )
    return [(size if type(size) is int else 0, stored_bytes(body)) for size, body in rows]


def stored_bytes(value: object) -> bytes:
    """Return a stored BLOB as bytes, whatever a database writer left in the column.

    TEXT, numbers and NULL are exported as their text (or nothing), never a crash: the
    verifier then reports that line INVALID where it sits.
    """
    if isinstance(value, bytes):
        return value
    if isinstance(value, memoryview | bytearray):
        return bytes(value)
    if value is None:
        return b""
    text = value if isinstance(value, str) else str(value)
    # One line per entry whatever it holds, so the lines after it keep their places.
    return text.encode("utf-8", "replace").replace(b"\n", b"\\n")


def stream_entries(session: Session, batch: int = 5000) -> Iterator[tuple[int, bytes]]:
    """Yield `(seq, stored bytes)` of every entry in sequence order, in batches."""
    rows = session.execute(
        select(col(AuditEvent.seq), col(AuditEvent.entry))
        .order_by(col(AuditEvent.seq))
        .execution_options(yield_per=batch)
    )
    for seq, stored in rows:
        yield int(seq), stored_bytes(stored)
