"""Retire credentials: never one a target still serves, always checked at the provider.

Also answers whether a value was ever known (current, previous, revoked, compromised, or
another environment's), so a used value never becomes current again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlmodel import Session, col, select

from rotator import machine as m
from rotator import repository as repo
from rotator.errors import NeedsPersonError, RetryLaterError, StillServedError
from rotator.secret import Secret
from rotator.store.models import CredentialVersion, Rotation, SecretRecord
from rotator.work import Unit, Work

if TYPE_CHECKING:
    from rotator.engine import Engine


def revoke_all(
    engine: Engine,
    work: Work,
    items: list[tuple[CredentialVersion, Secret | None]],
    *,
    allow_person: bool,
) -> list[str]:
    """Revoke each credential and check it is refused; return the ids now revoked."""
    provider = engine.rt.provider(work.unit.spec.provider)
    ctx = engine.ctx(work)
    done: list[str] = []
    for version, value in items:
        ref = version.provider_ref or ""
        serving = work.served.get(version.id)
        if serving:
            # DESIGN §4.9: never revoke what a target still serves (or may serve, after
            # a publish that did not confirm). A person asked to delete it is not asked.
            raise StillServedError(
                f"{work.unit.label}: credential {version.id} is still served by "
                f"{', '.join(serving)}; it is not revoked until every target serves "
                "another value (run `rotate show` to see what each target serves)"
            )
        try:
            provider.revoke(ctx, ref, value)
        except NeedsPersonError:
            if allow_person:
                raise
            continue  # retired by the person later, with the final revoke
        verifiable = provider.capabilities.verifiable_revocation
        if verifiable and value is not None and not provider.verify_revoked(ctx, ref, value):
            raise RetryLaterError(
                f"{work.unit.label}: the provider still accepts credential "
                f"{version.id}; revocation is eventual, checking again later",
                retry_after=60,
                provider=provider.name,
                operation="verify_revoked",
            )
        done.append(version.id)
    return done


def mark_revoked(engine: Engine, s: Session, work: Work, ids: list[str]) -> None:
    for vid in ids:
        version = s.get(CredentialVersion, vid)
        if version is None or version.state == repo.REVOKED:
            continue
        was = version.state
        m.move_version(version, repo.REVOKED)
        version.revoked_at = engine.rt.clock()
        version.ciphertext = None  # the value is destroyed with the credential
        s.add(version)
        engine.audit(
            s,
            "credential.revoked",
            unit=work.unit,
            rotation_id=work.rotation_id,
            version=vid,
            was=was,
            fingerprint=version.fingerprint,
            value_destroyed=True,
        )


def known_fingerprint(engine: Engine, unit: Unit, fingerprint: str) -> str | None:
    """Say what an already known value was, or None for a value never seen before.

    Every version of the secret counts (current, previous, pending, revoked, any
    compromised one), and for a secret with one value per environment, every other
    environment's values too.
    """
    with engine.rt.store.read() as s:
        rows = s.exec(
            select(CredentialVersion, SecretRecord)
            .join(SecretRecord, col(SecretRecord.id) == col(CredentialVersion.secret_id))
            .where(SecretRecord.name == unit.spec.name)
            .where(CredentialVersion.fingerprint == fingerprint)
        ).all()
        compromised: set[str] = set()
        for rotation in s.exec(
            select(Rotation)
            .join(SecretRecord, col(SecretRecord.id) == col(Rotation.secret_id))
            .where(SecretRecord.name == unit.spec.name, Rotation.kind == m.EMERGENCY)
        ):
            compromised.update(repo.facts_of(rotation).get("compromised", []))
    for version, record in rows:
        where = "" if record.scope_env == unit.scope_env else f" of {record.scope_env}"
        what = "compromised" if version.id in compromised else version.state
        return f"the {what} credential{where} (version {version.id})"
    return None


def revocation_list(
    engine: Engine,
    s: Session,
    unit: Unit,
    record: SecretRecord,
    rotation: Rotation,
    work: Work,
    step: str,
) -> list[tuple[CredentialVersion, Secret | None]]:
    """Name the credentials this step revokes: the old one, or every compromised one."""
    facts = repo.facts_of(rotation)
    if step == "generate":
        # An emergency first retires compromised credentials nothing uses any more
        # (a superseded pending one, a previous one), so at most two stay live.
        if rotation.kind != m.EMERGENCY:
            return []
        ids = [i for i in facts.get("compromised", []) if i not in facts.get("in_use", [])]
    elif "revoke" in facts:
        ids = list(facts["revoke"])
    elif rotation.kind == m.EMERGENCY:
        ids = list(facts.get("compromised", []))
    else:
        prev = repo.version_in(s, record.id or 0, repo.PREVIOUS)
        ids = [prev.id] if prev else []
    out: list[tuple[CredentialVersion, Secret | None]] = []
    for vid in ids:
        version = s.get(CredentialVersion, vid)
        if version is None or version.state == repo.REVOKED:
            continue
        value = None
        if version.ciphertext is not None:
            value = engine.reveal(s, unit, record, version, rotation.id, f"{step}: revoke")
        out.append((version, value))
    return out
