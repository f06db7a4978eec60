"""Query and change the stored rotations and credential versions; no decisions here."""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import func
from sqlmodel import Session, col, select

from rotator.errors import ClaimedElsewhereError
from rotator.keys import MasterKey
from rotator.secret import Secret
from rotator.store.models import CredentialVersion, Rotation, SecretRecord
from rotator.vault import associated_data, decrypt, encrypt

PENDING, CURRENT, PREVIOUS, REVOKED = "pending", "current", "previous", "revoked"
LIVE = (PENDING, CURRENT, PREVIOUS)


def new_id() -> str:
    return uuid.uuid4().hex[:16]


def ensure_secret(session: Session, name: str, scope_env: str, provider: str) -> SecretRecord:
    found = session.exec(
        select(SecretRecord).where(SecretRecord.name == name, SecretRecord.scope_env == scope_env)
    ).first()
    if found is not None:
        return found
    record = SecretRecord(name=name, scope_env=scope_env, provider=provider)
    session.add(record)
    session.flush()
    return record


def find_secret(session: Session, name: str, scope_env: str) -> SecretRecord | None:
    return session.exec(
        select(SecretRecord).where(SecretRecord.name == name, SecretRecord.scope_env == scope_env)
    ).first()


def versions(session: Session, secret_id: int, *states: str) -> list[CredentialVersion]:
    query = select(CredentialVersion).where(CredentialVersion.secret_id == secret_id)
    if states:
        query = query.where(col(CredentialVersion.state).in_(states))
    return list(session.exec(query.order_by(col(CredentialVersion.created_at))))


def version_in(session: Session, secret_id: int, state: str) -> CredentialVersion | None:
    found = versions(session, secret_id, state)
    return found[-1] if found else None


def live_count(session: Session, secret_id: int) -> int:
    return int(
        session.exec(
            select(func.count())
            .select_from(CredentialVersion)
            .where(
                CredentialVersion.secret_id == secret_id,
                col(CredentialVersion.state).in_(LIVE),
            )
        ).one()
    )


def add_version(
    session: Session,
    key: MasterKey,
    record: SecretRecord,
    value: Secret,
    *,
    state: str,
    ref: str | None,
    fingerprint: str,
    rotation_id: str | None,
    notes: dict[str, str] | None = None,
    at: datetime,
) -> CredentialVersion:
    vid = new_id()
    version = CredentialVersion(
        id=vid,
        secret_id=record.id or 0,
        state=state,
        provider_ref=ref,
        fingerprint=fingerprint,
        ciphertext=encrypt(key, value, associated_data(record.name, record.scope_env, vid)),
        key_id=key.key_id,
        rotation_id=rotation_id,
        notes=json.dumps(notes or {}, sort_keys=True),
        created_at=at,
    )
    session.add(version)
    session.flush()
    return version


def replace_value(
    session: Session,
    key: MasterKey,
    record: SecretRecord,
    version: CredentialVersion,
    value: Secret,
    ref: str | None,
    fingerprint: str,
) -> None:
    """Correct a recorded value and reference in place (`rotate import --replace`)."""
    version.ciphertext = encrypt(
        key, value, associated_data(record.name, record.scope_env, version.id)
    )
    version.key_id = key.key_id
    version.fingerprint = fingerprint
    version.provider_ref = ref
    session.add(version)
    session.flush()


def reveal(key: MasterKey, record: SecretRecord, version: CredentialVersion) -> Secret:
    """Decrypt one stored value; the caller audits who asked and why."""
    if version.ciphertext is None or version.key_id is None:
        raise ValueError(f"the value of version {version.id} was destroyed")
    return decrypt(
        key,
        version.ciphertext,
        associated_data(record.name, record.scope_env, version.id),
        stored_key_id=version.key_id,
        what=f"the stored value of {record.name} ({record.scope_env}, version {version.id})",
    )


def active_rotations(session: Session, secret_id: int) -> list[Rotation]:
    return list(
        session.exec(
            select(Rotation)
            .where(Rotation.secret_id == secret_id, col(Rotation.active).is_(True))
            .order_by(col(Rotation.created_at))
        )
    )


def facts_of(rotation: Rotation) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(rotation.facts or "{}")
    return loaded


def set_facts(rotation: Rotation, **changes: Any) -> None:
    facts = facts_of(rotation)
    facts.update(changes)
    rotation.facts = json.dumps(facts, sort_keys=True, default=str)


def claim(
    session: Session, rotation_id: str, runner: str, now: datetime, until: datetime
) -> Rotation:
    """Take the lease on a rotation and bump its fence; refuse one another runner holds."""
    query = select(Rotation).where(Rotation.id == rotation_id)
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rotation = session.exec(query).first()
    if rotation is None:
        raise ClaimedElsewhereError(
            f"rotation {rotation_id} is being changed by another runner right now; "
            "it will be picked up by the next run"
        )
    from rotator.clock import as_utc

    if held_elsewhere(rotation, runner, now) and rotation.claimed_until is not None:
        raise ClaimedElsewhereError(
            f"rotation {rotation_id} is claimed by runner {rotation.claimed_by} until "
            f"{as_utc(rotation.claimed_until).isoformat()}; leaving it to that runner"
        )
    rotation.claimed_by = runner
    rotation.claimed_until = until
    rotation.fence += 1
    session.add(rotation)
    session.flush()
    return rotation


def runner_id() -> str:
    """Name this process as a claimant: host, boot, process id and a random part."""
    return f"{socket.gethostname()}/{_boot_id()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"


class Leased(Protocol):
    """A row leased to the runner driving it: a rotation, or an own rotation."""

    claimed_by: str | None
    claimed_until: datetime | None


def held_elsewhere(rotation: Leased, runner: str, now: datetime) -> bool:
    """Return True while another live runner's lease on `rotation` lasts."""
    from rotator.clock import as_utc

    holder = rotation.claimed_by
    if holder in (None, runner) or rotation.claimed_until is None:
        return False
    if as_utc(rotation.claimed_until) <= now:
        return False
    return not _exited(holder or "")


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _exited(holder: str) -> bool:
    """Return True when `holder` is a process of this host, since this boot, that is gone.

    A runner killed outright (SIGKILL, a lost SSH session, the OOM killer) cannot release
    its claim; without this, the same host would wait out the whole lease before resuming
    (an emergency re-run would find its own rotation claimed for 15 minutes). Anything
    not provably dead (another host, another boot, a reused or foreign pid) keeps its lease.
    """
    host, _, rest = holder.partition("/")
    boot, _, rest = rest.partition("/")
    pid_text, _, _ = rest.partition("/")
    if host != socket.gethostname() or not boot or boot != _boot_id() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def fenced(session: Session, rotation_id: str, fence: int) -> Rotation:
    """Load a rotation for writing, refusing if another runner claimed it since."""
    rotation = session.get(Rotation, rotation_id)
    if rotation is None or rotation.fence != fence:
        raise ClaimedElsewhereError(
            f"rotation {rotation_id} was claimed by another runner while this one worked; "
            "this runner's result is discarded and the other runner's stands"
        )
    return rotation


def due_rotations(session: Session, now: datetime) -> Sequence[Rotation]:
    return session.exec(
        select(Rotation)
        .where(col(Rotation.active).is_(True))
        .where((col(Rotation.next_check_at).is_(None)) | (col(Rotation.next_check_at) <= now))
        .order_by(col(Rotation.created_at))
    ).all()
