"""Sign checkpoints of the trail in the C2SP signed-note format and copy them outside the DB.

A checkpoint note (https://c2sp.org/signed-note, https://c2sp.org/tlog-checkpoint):

    <origin>
    <size>
    <base64 head hash>
    prev <base64 SHA-256 of the previous checkpoint's body>     (absent on the first)

    — <key name> <base64(4-byte key hash || 64-byte Ed25519 signature)>

The head hash is the chain hash of entry `size`, not a Merkle root: the shape is the
tlog checkpoint's, the proof is the hash chain's. `AuditCheckpoint.body` stores the whole
signed note. Only the copy in the external sink catches a truncate-and-rewrite of the
database, so the caller appends each new checkpoint there too.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from sqlmodel import col

from audit.trail import lock_head, read_head
from audit.verify import (
    SIGNATURE_PREFIX,
    SINK_RECORD_PREFIX,
    Checkpoint,
    CheckpointError,
    note_key_hash,
    parse_checkpoint,
    verify_checkpoint,
)
from rotator.clock import now
from rotator.errors import AuditError, AuditWriteError
from rotator.store.models import AuditCheckpoint

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "append_to_sink",
    "checkpoint_body",
    "make_checkpoint",
    "parse_checkpoint",
    "should_checkpoint",
    "sign_note",
    "verify_checkpoint",
]

DEFAULT_EVERY = 1000


def _check_name(value: str, what: str) -> None:
    if not value or any(c.isspace() for c in value) or "+" in value:
        raise ValueError(f"the checkpoint {what} must be non-empty, without spaces or '+'")


def checkpoint_body(origin: str, size: int, head_hash: str, prev_body: bytes | None) -> bytes:
    """Return the note body (the signed text) of a checkpoint."""
    _check_name(origin, "origin")
    lines = [origin, str(size), base64.b64encode(bytes.fromhex(head_hash)).decode()]
    if prev_body is not None:
        lines.append("prev " + base64.b64encode(hashlib.sha256(prev_body).digest()).decode())
    return ("\n".join(lines) + "\n").encode()


def sign_note(body: bytes, signing_key: Ed25519PrivateKey, key_name: str) -> bytes:
    """Return the signed note: the body, a blank line and one Ed25519 signature line."""
    _check_name(key_name, "key name")
    key_id = note_key_hash(key_name, signing_key.public_key())
    blob = base64.b64encode(key_id + signing_key.sign(body)).decode()
    return body + f"\n{SIGNATURE_PREFIX}{key_name} {blob}\n".encode()


def should_checkpoint(size: int, every: int = DEFAULT_EVERY) -> bool:
    """Return whether a trail of `size` entries is due a periodic checkpoint."""
    if every < 1:
        raise ValueError("checkpoints are made every 1 or more events")
    return size > 0 and size % every == 0


def make_checkpoint(
    session: Session, signing_key: Ed25519PrivateKey, origin: str, key_name: str
) -> AuditCheckpoint | None:
    """Sign and store a checkpoint of the current head; None if nothing new since the last.

    Runs in the caller's transaction (flushed, not committed); raises `AuditWriteError`
    if it cannot be stored and `AuditError` if the previous checkpoint is unreadable.
    """
    try:
        lock_head(session)
        size, head_hash = read_head(session)
        last = session.execute(
            select(AuditCheckpoint).order_by(col(AuditCheckpoint.id).desc()).limit(1)
        ).scalar_one_or_none()
    except SQLAlchemyError as exc:
        raise AuditWriteError(f"cannot read the audit head ({type(exc).__name__})") from exc
    if size == 0 or (last is not None and last.size == size):
        return None
    prev_body = None
    if last is not None:
        try:
            prev_body = parse_checkpoint(last.body).text
        except CheckpointError as exc:
            raise AuditError(f"the last audit checkpoint (id {last.id}) is unreadable") from exc
    note = sign_note(checkpoint_body(origin, size, head_hash, prev_body), signing_key, key_name)
    record = AuditCheckpoint(size=size, head_hash=head_hash, body=note, created_at=now())
    try:
        session.add(record)
        session.flush()
    except SQLAlchemyError as exc:
        raise AuditWriteError(f"the audit checkpoint could not be stored: {exc}") from exc
    return record


def append_to_sink(path: Path, body: bytes) -> None:
    """Append one signed checkpoint to the external sink file and fsync it.

    Each record is a header line `rotator-checkpoint <length>` followed by exactly that
    many bytes and a newline, so records stay readable by people and cannot run together.
    A new file is created with mode 0600; an existing file keeps the mode it was given.
    """
    created = not path.exists()
    record = SINK_RECORD_PREFIX + str(len(body)).encode() + b"\n" + body + b"\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        # One write call keeps a record whole even if two writers share the sink.
        written = os.write(fd, record)
        if written != len(record):
            raise OSError(f"short write to the checkpoint sink {path}")
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:
        # The directory entry of a new file is durable only once its directory is synced.
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
