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
import errno
import hashlib
import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from sqlmodel import col

from audit.mac import ForgedEntryError, check_mac
from audit.trail import default_mac_key, lock_head
from audit.verify import (
    ENTRY_DOMAIN_TAG,
    SIGNATURE_PREFIX,
    SINK_RECORD_PREFIX,
    ZERO_HASH,
    Checkpoint,
    CheckpointError,
    entry_fields,
    note_key_hash,
    parse_checkpoint,
    read_sink,
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
    "sink_last_size",
    "sync_sink",
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


_ROWS_SINCE = "SELECT seq, entry FROM audit_event WHERE seq > :after ORDER BY seq"
_MAX_NAMED = 20


def _new_head(session: Session, after: int, head: str, mac_key: bytes | None) -> tuple[int, str]:
    """Check every entry after `after` and return the head it reaches, by our own arithmetic.

    The chain is recomputed from the last signed head rather than read from the copy
    column, and with a MAC key every entry must carry a valid MAC: a database writer can
    compute hashes but not MACs. Raises `ForgedEntryError` naming each entry at fault.
    """
    faults: list[str] = []
    size, digest = after, bytes.fromhex(head)
    rows = session.connection().execute(text(_ROWS_SINCE), {"after": after})
    for seq, stored in rows:
        if isinstance(stored, memoryview):
            stored = stored.tobytes()
        if not isinstance(stored, bytes):
            faults.append(f"entry {seq}: stored as {type(stored).__name__}, not bytes")
            size += 1
            continue
        found_seq, prev = entry_fields(stored)
        if found_seq != size + 1 or found_seq != seq:
            faults.append(f"entry {seq}: out of sequence after entry {size}")
        elif prev != digest:
            faults.append(f"entry {seq}: does not link to entry {size}")
        elif mac_key is not None and (why := check_mac(mac_key, stored)) is not None:
            faults.append(f"entry {seq}: {why}")
        digest = hashlib.sha256(ENTRY_DOMAIN_TAG + digest + stored).digest()
        size += 1
    if faults:
        shown = "; ".join(faults[:_MAX_NAMED])
        more = f" (and {len(faults) - _MAX_NAMED} more)" if len(faults) > _MAX_NAMED else ""
        raise ForgedEntryError(
            f"the audit trail holds entries the tool did not write or that were changed: "
            f"{shown}{more}. No checkpoint was signed over them; find who wrote to the "
            "database, then run `rotate audit verify`"
        )
    return size, digest.hex()


def make_checkpoint(
    session: Session,
    signing_key: Ed25519PrivateKey,
    origin: str,
    key_name: str,
    *,
    mac_key: bytes | None = None,
) -> AuditCheckpoint | None:
    """Sign and store a checkpoint of the current head; None if nothing new since the last.

    Every entry since the last checkpoint is checked first (chain recomputed, and its MAC
    under `mac_key`, by default this installation's), so the tool never signs over an
    entry it did not write. Runs in the caller's transaction (flushed, not committed);
    raises `ForgedEntryError` (exit 1) naming the entries at fault, `AuditWriteError` if
    it cannot be stored and `AuditError` if the previous checkpoint is unreadable.
    """
    key = default_mac_key() if mac_key is None else mac_key
    try:
        lock_head(session)
        last = session.execute(
            select(AuditCheckpoint).order_by(col(AuditCheckpoint.id).desc()).limit(1)
        ).scalar_one_or_none()
    except SQLAlchemyError as exc:
        raise AuditWriteError(f"cannot read the audit head ({type(exc).__name__})") from exc
    prev_body = None
    after, head = 0, ZERO_HASH
    if last is not None:
        try:
            previous = verify_checkpoint(bytes(last.body), signing_key.public_key(), key_name)
        except (CheckpointError, TypeError) as exc:
            raise AuditError(
                f"the last audit checkpoint (id {last.id}) is unreadable or not signed by "
                "this key; run `rotate audit verify`"
            ) from exc
        prev_body, after, head = previous.text, previous.size, previous.head_hash
    try:
        size, head_hash = _new_head(session, after, head, key)
    except SQLAlchemyError as exc:
        raise AuditWriteError(f"cannot read the audit trail ({type(exc).__name__})") from exc
    if size == after:
        return None
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


def sink_last_size(path: Path) -> int:
    """Return the size of the last checkpoint in the sink, 0 if it does not exist yet.

    Raises `OSError` for a sink that is a symlink or not a regular file (a link to
    `/dev/null` would swallow every copy) and `CheckpointError` for one that is unreadable
    as records. Reading is bounded per record (see `audit.verify.read_sink`).
    """
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return 0
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISREG(info.st_mode):
        raise OSError(errno.EINVAL, "the checkpoint sink is not a regular file", str(path))
    last = 0
    with path.open("rb") as stream:
        for note in read_sink(stream):
            last = max(last, parse_checkpoint(note).size)
    return last


def sync_sink(session: Session, path: Path) -> int:
    """Copy to the sink every stored checkpoint beyond its last one; return how many.

    A copy that failed once (a full disk, a missing mount) is therefore made by the next
    command that syncs, in order, until it lands.
    """
    have = sink_last_size(path)
    rows = session.execute(
        select(col(AuditCheckpoint.size), col(AuditCheckpoint.body))
        .where(col(AuditCheckpoint.size) > have)
        .order_by(col(AuditCheckpoint.id))
    ).all()
    if rows:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    for _size, body in rows:
        append_to_sink(path, bytes(body))
    return len(rows)
