"""Read and record the tool's own credentials in the store, encrypted under the master key.

The associated data binds each ciphertext to `own:<name>` and its row id, so a value
copied onto another row or another credential fails to decrypt.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, col, select

from rotator import machine as m
from rotator.errors import BadInputError
from rotator.own.models import OwnCredential, OwnRotation
from rotator.secret import Secret
from rotator.vault import associated_data, decrypt, encrypt

if TYPE_CHECKING:
    from rotator.engine import Engine
    from rotator.runtime import Runtime

logger = logging.getLogger(__name__)
ALIASES = {"cloudflare": "cloudflare_api_token", "google": "gcp_service_account"}
"""Short names `rotate credentials` accepts for the `[credentials]` names."""
SCOPE = "own"


def canonical(name: str) -> str:
    return ALIASES.get(name, name)


def aad(name: str, row_id: str) -> bytes:
    return associated_data(f"{SCOPE}:{name}", SCOPE, row_id)


def new_id() -> str:
    return uuid.uuid4().hex


def current_row(s: Session, name: str) -> OwnCredential | None:
    return s.exec(
        select(OwnCredential).where(OwnCredential.name == name, OwnCredential.state == "current")
    ).first()


def rows(s: Session, name: str, *states: str) -> list[OwnCredential]:
    query = select(OwnCredential).where(OwnCredential.name == name)
    if states:
        query = query.where(col(OwnCredential.state).in_(states))
    return list(s.exec(query.order_by(col(OwnCredential.created_at))).all())


def in_flight(s: Session, name: str) -> OwnRotation | None:
    return s.exec(
        select(OwnRotation).where(
            OwnRotation.name == name, col(OwnRotation.state).not_in(("done", "failed"))
        )
    ).first()


def last_done(s: Session, name: str) -> OwnRotation | None:
    return s.exec(
        select(OwnRotation)
        .where(OwnRotation.name == name, OwnRotation.state == "done")
        .order_by(col(OwnRotation.finished_at).desc())
    ).first()


@contextmanager
def starting(rt: Runtime, name: str) -> Iterator[Session]:
    """A write transaction that records a rotation's intent; a race is exit 10, not a bug.

    The partial unique index `uq_own_rotation_in_flight` lets one rotation of a credential
    be in flight; another host starting one at the same moment loses here.
    """
    from sqlalchemy.exc import IntegrityError

    from rotator.errors import ClaimedElsewhereError

    try:
        with rt.store.write() as s:
            yield s
    except IntegrityError:
        raise ClaimedElsewhereError(
            f"another runner started a rotation of the tool's {name} at the same moment; "
            "it carries on there: run `rotate credentials list` to see it"
        ) from None


LEASE = timedelta(minutes=15)
"""How long an own rotation stays with the runner driving it if that runner vanishes."""


def claim(s: Session, rt: Runtime, rid: str) -> OwnRotation:
    """Lease an own rotation to this runner in the caller's transaction.

    Two hosts resuming the same rotation would both create, switch or delete: the second
    stops here (exit 10) while the first one's lease lasts. A runner of this host that
    died (kill -9) holds nothing (`repository.held_elsewhere`), so a re-run resumes at once.
    """
    from rotator.clock import as_utc
    from rotator.errors import ClaimedElsewhereError
    from rotator.repository import held_elsewhere

    query = select(OwnRotation).where(OwnRotation.id == rid)
    if s.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    rotation = s.exec(query).first()
    if rotation is None:
        raise RuntimeError(f"own rotation {rid} is gone")
    now = rt.clock()
    if held_elsewhere(rotation, rt.runner, now):
        until = as_utc(rotation.claimed_until or now).isoformat(timespec="seconds")
        raise ClaimedElsewhereError(
            f"the rotation of the tool's {rotation.name} is being driven by runner "
            f"{rotation.claimed_by} (lease until {until}); leaving it to that runner"
        )
    rotation.claimed_by = rt.runner
    rotation.claimed_until = now + LEASE
    s.add(rotation)
    return rotation


@contextmanager
def driving(engine: Engine, rid: str) -> Iterator[None]:
    """Drive a claimed own rotation; give the lease back when this runner stops, however."""
    try:
        yield
    finally:
        rt = engine.rt
        try:
            with rt.store.write() as s:
                rotation = s.get(OwnRotation, rid)
                if rotation is not None and rotation.claimed_by == rt.runner:
                    rotation.claimed_by = None
                    rotation.claimed_until = None
                    s.add(rotation)
        except Exception as exc:  # the lease runs out by itself; keep the first error
            logger.warning("own rotation %s: lease not released (%s)", rid, type(exc).__name__)


def reveal(rt: Runtime, row: OwnCredential) -> Secret:
    return decrypt(
        rt.master_key,
        row.ciphertext,
        aad(row.name, row.id),
        stored_key_id=row.key_id,
        what=f"the tool's own credential {row.name!r} ({row.state})",
    )


def make_row(
    rt: Runtime,
    name: str,
    value: Secret,
    *,
    state: str,
    source: str,
    provider_ref: str | None,
    rotation_id: str | None = None,
    notes: dict[str, Any] | None = None,
) -> OwnCredential:
    row_id = new_id()
    now = rt.clock()
    return OwnCredential(
        id=row_id,
        name=name,
        state=state,
        source=source,
        provider_ref=provider_ref,
        fingerprint=rt.fingerprint(value),
        ciphertext=encrypt(rt.master_key, value, aad(name, row_id)),
        key_id=rt.master_key.key_id,
        rotation_id=rotation_id,
        created_at=now,
        activated_at=now if state == "current" else None,
        notes=json.dumps(notes or {}, sort_keys=True),
    )


def stored_value(rt: Runtime, name: str) -> Secret | None:
    """Return the current stored value of an own credential, or None (env or file then).

    Read on every use, so a rotation by another process is picked up at the next request.
    """
    with rt.store.read() as s:
        row = current_row(s, name)
    return reveal(rt, row) if row is not None else None


def has_stored(rt: Runtime, name: str) -> bool:
    with rt.store.read() as s:
        return current_row(s, name) is not None


def check_name(rt: Runtime, name: str) -> str:
    """Resolve an alias and refuse a name the inventory does not list under [credentials]."""
    resolved = canonical(name)
    if resolved not in rt.inventory.credentials:
        known = ", ".join(sorted(rt.inventory.credentials)) or "none"
        raise BadInputError(
            f"{name!r} is not one of the tool's own credentials in the inventory's "
            f"[credentials] (known: {known}; aliases: cloudflare, google); add it there first"
        )
    return resolved


def record_held(
    engine: Engine,
    name: str,
    value: Secret,
    provider_ref: str | None,
    *,
    source: str,
    event: str,
    ref_name: str,
) -> OwnCredential:
    """Store a verified value as current, audited; the previous current, if any, stays
    live at its provider (the person who imported a replacement deletes the old one).

    `ref_name` names the provider's id in its own words in the audit event (token_id,
    key_id). Refused while a rotation of `name` is in flight: it owns the current row.
    """
    from rotator.errors import RefusedError

    rt = engine.rt
    ids: dict[str, Any] = {ref_name: provider_ref}
    with rt.store.write() as s:
        if in_flight(s, name) is not None:
            raise RefusedError(
                f"a rotation of the tool's {name} is in flight; finish it first "
                f"(`rotate credentials rotate {name}` resumes it)"
            )
        old = current_row(s, name)
        if old is not None:
            m.move_version(old, "previous")
            s.add(old)
            s.flush()
        row = make_row(rt, name, value, state="current", source=source, provider_ref=provider_ref)
        s.add(row)
        engine.audit(
            s,
            event,
            credential=name,
            source=source,
            fingerprint=row.fingerprint,
            replaced=old.provider_ref if old else None,
            **ids,
        )
    return row


def record_switch(
    engine: Engine, rid: str, old_id: str, new_id: str, credential: str, **details: Any
) -> None:
    """Make the verified new credential current and the old one previous, audited.

    `details` name the provider's ids in its own words (a token id, a key id).
    """
    rt = engine.rt
    with rt.store.write() as s:
        r, o, n = _loaded(s, rid, old_id, new_id)
        assert n is not None
        # Two statements: the partial unique index allows one current row at a time.
        m.move_version(o, "previous")
        s.add(o)
        s.flush()
        m.move_version(n, "current")
        n.activated_at = rt.clock()
        s.add(n)
        m.move_own_rotation(r, "switched")
        s.add(r)
        engine.audit(
            s,
            "own.credential.switched",
            rotation_id=rid,
            credential=credential,
            fingerprint=n.fingerprint,
            **details,
        )


def record_retired(
    engine: Engine, rid: str, old_id: str, credential: str, kind: str, **details: Any
) -> None:
    """Record the old credential revoked (proven refused) and the rotation done, audited."""
    rt = engine.rt
    with rt.store.write() as s:
        r, o, _n = _loaded(s, rid, old_id, None)
        m.move_version(o, "revoked")
        o.revoked_at = rt.clock()
        m.move_own_rotation(r, "done")
        r.finished_at = rt.clock()
        s.add(o)
        s.add(r)
        engine.audit(
            s,
            "own.credential.revoked",
            rotation_id=rid,
            credential=credential,
            fingerprint=o.fingerprint,
            verified_refused=True,
            **details,
        )
        engine.audit(s, "own.rotation.completed", rotation_id=rid, credential=credential, kind=kind)


def _loaded(
    s: Session, rid: str, old_id: str, new_id: str | None
) -> tuple[OwnRotation, OwnCredential, OwnCredential | None]:
    r, o = s.get(OwnRotation, rid), s.get(OwnCredential, old_id)
    n = s.get(OwnCredential, new_id) if new_id else None
    if r is None or o is None or (new_id and n is None):
        raise RuntimeError(f"own rotation {rid}: its recorded rows are gone")
    return r, o, n
