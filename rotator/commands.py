"""The operator commands as library calls: import, emergency, supply, confirm, approve...

The CLI parses and renders; these functions hold the behaviour, so they can be used
(and tested) without it. A refused command raises `RefusedError` after auditing the
refusal, and changes nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from rotator import machine as m
from rotator import repository as repo
from rotator.clock import as_utc
from rotator.engine import Engine, Outcome, Unit
from rotator.errors import (
    ClaimedElsewhereError,
    RefusedError,
    RotatorError,
    UnknownNameError,
)
from rotator.secret import Secret
from rotator.store.models import Approval, CredentialVersion, Rotation, SecretRecord, StepRecord

CONFIRM_ATTEMPTS = 6
CONFIRM_DELAY = 5.0
CLAIM_WAIT = 60.0


def _refuse(engine: Engine, unit: Unit, command: str, reason: str) -> RefusedError:
    return engine.refuse(unit, command, RefusedError(reason))


def _rotation_for(engine: Engine, unit: Unit, command: str) -> Rotation:
    """Find the rotation a command applies to, refusing (audited) when the state forbids it."""
    refusal: RefusedError | None = None
    with engine.rt.store.read() as s:
        record = repo.find_secret(s, unit.spec.name, unit.scope_env)
        rotations = repo.active_rotations(s, record.id or 0) if record else []
        now = engine.rt.clock()
        # Emergencies first: they supersede anything quarterly.
        for rotation in sorted(rotations, key=lambda r: r.kind != m.EMERGENCY):
            try:
                m.check_command(command, engine.facts(s, rotation, unit, now))
                return rotation
            except RefusedError as exc:
                refusal = refusal or exc
    if refusal is None:
        refusal = RefusedError(
            f"no rotation of {unit.label} is in flight; `rotate status` shows its state"
        )
    raise engine.refuse(unit, command, refusal)


def import_value(engine: Engine, unit: Unit, value: Secret, ref: str | None) -> str:
    """Record the value in use today as the current credential of `unit`."""
    rt = engine.rt
    with rt.store.read() as s:
        record_ = repo.find_secret(s, unit.spec.name, unit.scope_env)
        exists = record_ is not None and repo.version_in(s, record_.id or 0, repo.CURRENT)
    if exists:
        raise _refuse(
            engine,
            unit,
            "import",
            f"{unit.label} already has a current value; rotate it instead "
            "(`rotate emergency` if the recorded one is wrong)",
        )
    with rt.store.write() as s:
        record = engine.record(s, unit)
        fingerprint = rt.fingerprint(value)
        version = repo.add_version(
            s,
            rt.master_key,
            record,
            value,
            state=repo.CURRENT,
            ref=ref,
            fingerprint=fingerprint,
            rotation_id=None,
            at=rt.clock(),
        )
        version.promoted_at = rt.clock()
        engine.audit(
            s,
            "credential.imported",
            unit=unit,
            version=version.id,
            fingerprint=fingerprint,
            provider_ref=ref,
        )
    engine.checkpoint()
    return version.id


def start_emergency(engine: Engine, unit: Unit, reason: str) -> str:
    """Record the emergency (assess) and supersede a quarterly cycle in flight."""
    rt = engine.rt
    if not reason.strip():
        raise _refuse(engine, unit, "emergency", "an emergency needs --reason (what leaked, how)")
    from rotator.rewrap import check_key_ids

    # A master key that cannot read the stored values would stop the emergency after
    # it is recorded; refuse before anything is written.
    check_key_ids(rt.store, rt.master_key)
    deadline = rt.clock() + timedelta(seconds=CLAIM_WAIT)
    while True:
        try:
            return _assess(engine, unit, reason)
        except ClaimedElsewhereError:
            if rt.clock() >= deadline:
                raise
            rt.progress("waiting for another runner to release this secret...")
            rt.sleep(2.0)


def _assess(engine: Engine, unit: Unit, reason: str) -> str:
    rt = engine.rt
    now = rt.clock()
    with rt.store.read() as s:
        record_ = repo.find_secret(s, unit.spec.name, unit.scope_env)
        has_current = record_ is not None and repo.version_in(s, record_.id or 0, repo.CURRENT)
    if not has_current:
        raise _refuse(
            engine,
            unit,
            "emergency",
            f"no current value of {unit.label} is recorded; run `rotate import` first",
        )
    with rt.store.write() as s:
        record = engine.record(s, unit)
        active = repo.active_rotations(s, record.id or 0)
        for rotation in active:
            if rotation.kind == m.EMERGENCY:
                return rotation.id  # resume the emergency already under way
        for rotation in active:
            if repo.held_elsewhere(rotation, rt.runner, now):
                raise ClaimedElsewhereError(
                    f"{unit.label} is being worked on by runner {rotation.claimed_by}"
                )
        live = repo.versions(s, record.id or 0, *repo.LIVE)
        current = [v.id for v in live if v.state == repo.CURRENT]
        superseded = []
        for rotation in active:
            if rotation.state == m.REVOKED and rotation.kind == m.QUARTERLY:
                continue  # only its review is left; the emergency does not undo it
            rotation.state = m.SUPERSEDED
            rotation.active = False
            rotation.finished_at = now
            rotation.fence += 1  # a runner still holding it loses its claim
            s.add(rotation)
            superseded.append(rotation.id)
        emergency = Rotation(
            id=repo.new_id(),
            secret_id=record.id or 0,
            kind=m.EMERGENCY,
            state=m.ASSESSED,
            actor=rt.actor,
            reason=reason,
            created_at=now,
            updated_at=now,
            next_check_at=now,
        )
        repo.set_facts(
            emergency,
            reason=reason,
            compromised=[v.id for v in live],
            in_use=current,
            superseded=superseded,
        )
        s.add(emergency)
        s.flush()
        engine.audit(
            s,
            "emergency.started",
            unit=unit,
            rotation_id=emergency.id,
            reason=reason,
            compromised=[
                {"version": v.id, "state": v.state, "fingerprint": v.fingerprint} for v in live
            ],
            superseded=superseded,
        )
        for rid in superseded:
            engine.audit(s, "rotation.superseded", unit=unit, rotation_id=rid, by=emergency.id)
    engine.notify(
        "emergency-started",
        f"Emergency rotation of {unit.label} started by {rt.actor}. Reason: {reason}. "
        f"{len(live)} credential(s) are treated as compromised and will be revoked.",
        unit=unit,
    )
    return emergency.id


def drive(engine: Engine, rotation_id: str, *, max_wait: float = 900.0) -> Outcome:
    """Advance one rotation until it finishes, waits for a person, or fails for good."""
    rt = engine.rt
    waited = 0.0
    while True:
        outcome, _ = engine._advance(rotation_id, publish_later=False)
        with rt.store.read() as s:
            rotation = s.get(Rotation, rotation_id)
            assert rotation is not None
            state, next_at = rotation.state, rotation.next_check_at
        if state in m.TERMINAL or state in (m.AWAITING_SUPPLY, m.AWAITING_REVOKE, m.FAILED):
            return outcome
        if outcome.status in ("claimed", "failed"):
            # "failed" without a failed state: the step could not even begin (a wrong
            # master key, the database); waiting and trying again cannot mend it.
            return outcome
        # Retry later: an emergency blocks until done, within the step's retry budget.
        delay = 1.0
        if next_at is not None:
            delay = max(0.0, (as_utc(next_at) - rt.clock()).total_seconds())
        if waited + delay > max_wait:
            return outcome
        rt.progress(f"{outcome.unit}: retrying in {delay:.0f} s ({outcome.message})")
        rt.sleep(delay)
        waited += delay
        with rt.store.write() as s:
            rotation = s.get(Rotation, rotation_id)
            assert rotation is not None
            rotation.next_check_at = rt.clock()
            s.add(rotation)


def supply(engine: Engine, unit: Unit, value: Secret) -> Outcome:
    """Hand a person's new credential to the rotation awaiting it, check it, continue."""
    rotation = _rotation_for(engine, unit, "supply")
    rt = engine.rt
    provider = rt.provider(unit.spec.provider)
    # Check the value before recording anything: a wrong or mistyped value leaves the
    # rotation exactly as it was, still awaiting a value.
    generated = provider.accept_supplied(
        rt.provider_context(unit.spec, unit.scope_env, rotation.id), value
    )
    with engine.claimed(rotation.id) as fence:
        work = engine._begin(rotation.id, fence, "generate")
        fingerprint = rt.fingerprint(generated.value)
        retired: list[str] = []
        if rotation.kind == m.EMERGENCY:
            # The person was asked to delete unused compromised credentials first.
            for version, old in work.to_revoke:
                if old is not None and provider.verify_revoked(
                    engine.ctx(work), version.provider_ref or "", old
                ):
                    retired.append(version.id)

        def apply(s: Session, r: Rotation) -> None:
            engine._mark_revoked(s, work, retired)
            engine._store_pending(s, work, r, generated.value, generated.ref, {}, fingerprint)
            engine.audit(
                s, "credential.supplied", unit=unit, rotation_id=r.id, fingerprint=fingerprint
            )
            r.state = m.GENERATED

        engine._finish(work, apply)
    outcome = drive(engine, rotation.id)
    engine.checkpoint()
    return outcome


def confirm(engine: Engine, unit: Unit, step: str) -> Outcome:
    """Verify a manual step a person says is done (today: a revocation), then continue."""
    if step != "revoke":
        raise _refuse(engine, unit, f"confirm {step}", "only `--step revoke` awaits confirmation")
    rotation = _rotation_for(engine, unit, "confirm-revoke")
    rt = engine.rt
    provider = rt.provider(unit.spec.provider)
    # Ask the provider before touching the rotation: a refusal must change nothing.
    peek = engine._begin(rotation.id, 0, "revoke", intent=False)
    ctx = engine.ctx(peek)
    still: list[str] = []
    for attempt in range(CONFIRM_ATTEMPTS):
        still = [
            version.id
            for version, old in peek.to_revoke
            if old is not None and not provider.verify_revoked(ctx, version.provider_ref or "", old)
        ]
        if not still:
            break
        if attempt + 1 < CONFIRM_ATTEMPTS:
            rt.progress(
                f"{unit.label}: the provider still accepts the old credential; "
                f"checking again in {CONFIRM_DELAY:.0f} s"
            )
            rt.sleep(CONFIRM_DELAY)
    if still:
        raise engine.refuse(
            unit,
            "confirm revoke",
            RefusedError(
                f"{unit.label}: the provider still accepts credential(s) {', '.join(still)}; "
                "it has not been revoked yet (revoke it at the provider; providers revoke "
                "eventually: try again in a few minutes)"
            ),
        )
    with engine.claimed(rotation.id) as fence:
        work = engine._begin(rotation.id, fence, "revoke")
        ids = [v.id for v, _ in work.to_revoke]
        rolling_back = bool(work.facts.get("rolling_back"))

        def apply(s: Session, r: Rotation) -> None:
            engine._mark_revoked(s, work, ids)
            engine.audit(s, "step.confirmed", unit=unit, rotation_id=r.id, step="revoke")
            r.state = m.ROLLED_BACK if rolling_back else m.REVOKED

        engine._finish(work, apply)
    outcome = drive(engine, rotation.id)
    engine.checkpoint()
    return outcome


def approve(engine: Engine, unit: Unit, note: str) -> str:
    rotation = _rotation_for(engine, unit, "approve")
    with engine.rt.store.write() as s:
        s.add(
            Approval(
                rotation_id=rotation.id,
                kind="approval",
                actor=engine.rt.actor,
                note=note,
                at=engine.rt.clock(),
            )
        )
        engine.audit(s, "rotation.approved", unit=unit, rotation_id=rotation.id, note=note)
    engine.checkpoint()
    return rotation.id


def review(engine: Engine, unit: Unit, note: str) -> str:
    if not note.strip():
        raise _refuse(engine, unit, "review", "a review needs --note saying what was checked")
    rotation = _rotation_for(engine, unit, "review")
    with engine.claimed(rotation.id) as fence, engine.rt.store.write() as s:
        r = repo.fenced(s, rotation.id, fence)
        s.add(
            Approval(
                rotation_id=r.id,
                kind="review",
                actor=engine.rt.actor,
                note=note,
                at=engine.rt.clock(),
            )
        )
        r.state = m.COMPLETED
        r.active = False
        r.finished_at = engine.rt.clock()
        r.next_check_at = None
        s.add(r)
        engine.audit(s, "rotation.reviewed", unit=unit, rotation_id=r.id, note=note)
    engine.checkpoint()
    return rotation.id


def rollback(engine: Engine, unit: Unit, reason: str, *, abort: bool = False) -> Outcome:
    """Put the previous value back everywhere and revoke the new credential."""
    command = "abort" if abort else "rollback"
    if not reason.strip():
        raise _refuse(engine, unit, command, f"{command} needs --reason")
    rotation = _rotation_for(engine, unit, command)
    with engine.claimed(rotation.id) as fence:
        work = engine._begin(rotation.id, fence, "rollback")
        try:
            apply = engine.do_rollback(work, reason)
        except RotatorError as exc:
            engine._fail_or_wait(work, exc)
            raise

        def finish(s: Session, r: Rotation) -> None:
            apply(s, r)
            if abort and r.state == m.ROLLED_BACK:
                r.state = m.ABORTED

        engine._finish(work, finish)
    engine.notify(command, f"{unit.label}: {command} by {engine.rt.actor}: {reason}", unit=unit)
    engine.checkpoint()
    return Outcome(unit.label, "done", [command], reason)


def resume(engine: Engine, unit: Unit) -> Outcome:
    rotation = _rotation_for(engine, unit, "resume")
    with engine.claimed(rotation.id) as fence, engine.rt.store.write() as s:
        r = repo.fenced(s, rotation.id, fence)
        facts = repo.facts_of(r)
        r.state = facts.get("failed_state") or m.PLANNED
        r.attempts = 0
        r.next_check_at = engine.rt.clock()
        s.add(r)
        engine.audit(s, "rotation.resumed", unit=unit, rotation_id=r.id, state=r.state)
    outcome = drive(engine, rotation.id)
    engine.checkpoint()
    return outcome


# ---------------------------------------------------------------------- read-only views
@dataclass
class PlanLine:
    unit: str
    rotation: str | None
    kind: str
    state: str
    action: str
    reason: str
    until: datetime | None


def plan(engine: Engine, at: datetime) -> list[PlanLine]:
    """Say what `rotate run` would do at `at`, changing nothing."""
    from schedules import current_cycle_start, month_gate

    inv = engine.rt.inventory
    cycle = current_cycle_start(at, inv.tz, inv.quarter_start_months)
    opens = at >= month_gate(cycle, 1, inv.tz) and cycle.month_of(at.astimezone(inv.tz).date()) == 1
    lines: list[PlanLine] = []
    with engine.rt.store.read() as s:
        for unit in engine.units():
            record = repo.find_secret(s, unit.spec.name, unit.scope_env)
            rotations = repo.active_rotations(s, record.id) if record and record.id else []
            has_cycle = (
                record is not None
                and s.exec(
                    select(Rotation).where(
                        Rotation.secret_id == record.id, Rotation.cycle == cycle.id
                    )
                ).first()
                is not None
            )
            if opens and not has_cycle:
                rotations = [
                    *rotations,
                    Rotation(
                        id="(new)",
                        secret_id=record.id if record and record.id else -1,
                        kind=m.QUARTERLY,
                        cycle=cycle.id,
                        state=m.PLANNED,
                        actor="-",
                    ),
                ]
            if not rotations:
                lines.append(
                    PlanLine(unit.label, None, "-", "-", "nothing", "no rotation due", None)
                )
            for rotation in rotations:
                decision = m.next_decision(engine.facts(s, rotation, unit, at))
                action, reason, until = _describe(decision, unit)
                lines.append(
                    PlanLine(
                        unit.label,
                        rotation.id,
                        rotation.kind,
                        rotation.state,
                        action,
                        reason,
                        until,
                    )
                )
    return lines


def _describe(decision: m.Decision, unit: Unit) -> tuple[str, str, datetime | None]:
    if isinstance(decision, m.Do):
        return decision.step, "due now", None
    if isinstance(decision, m.Wait):
        return "wait", decision.reason, decision.until
    if isinstance(decision, m.AwaitPerson):
        command = decision.command.format(secret=unit.spec.name, env=unit.env_flag)
        return "person", f"{decision.action}: {command}", None
    return "nothing", decision.state, None


def status(engine: Engine) -> list[dict[str, Any]]:
    """Describe every unit: provider, scope, age of its current value, rotation in flight."""
    rt = engine.rt
    now = rt.clock()
    rows = []
    with rt.store.read() as s:
        records = {(r.name, r.scope_env): r for r in s.exec(select(SecretRecord)).all()}
        current = {
            v.secret_id: v
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
        for unit in engine.units():
            record = records.get((unit.spec.name, unit.scope_env))
            version = current.get(record.id) if record and record.id else None
            since = None
            if version is not None:
                since = as_utc(version.promoted_at or version.created_at)
            in_flight = []
            for r in active.get(record.id, []) if record and record.id else []:
                facts = repo.facts_of(r)
                in_flight.append(
                    {
                        "rotation": r.id,
                        "kind": r.kind,
                        "cycle": r.cycle,
                        "state": r.state,
                        "needs_person": r.state in (m.AWAITING_SUPPLY, m.AWAITING_REVOKE, m.FAILED)
                        or (r.state == m.REVOKED and r.kind == m.QUARTERLY),
                        "failed": r.state == m.FAILED,
                        "last_error": r.last_error,
                        "instruction": facts.get("instruction")
                        if r.state in (m.AWAITING_SUPPLY, m.AWAITING_REVOKE)
                        else None,
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
                    "current": version is not None,
                    "current_since": since.isoformat() if since else None,
                    "age_days": round((now - since).total_seconds() / 86400, 1) if since else None,
                    "rotations": in_flight,
                }
            )
    from rotator.notify import notification_failures

    failures = notification_failures(engine)
    for row in rows:
        row["notification_failures"] = [
            f for f in failures if f["secret"] == row["secret"] and f["scope"] == row["scope"]
        ]
    return rows


def show(engine: Engine, unit: Unit) -> dict[str, Any]:
    """Return one unit's rotations, versions and steps with dates and actors."""
    with engine.rt.store.read() as s:
        record = repo.find_secret(s, unit.spec.name, unit.scope_env)
        if record is None or record.id is None:
            return {
                "secret": unit.spec.name,
                "scope": unit.scope_env,
                "versions": [],
                "rotations": [],
            }
        versions = [
            {
                "id": v.id,
                "state": v.state,
                "provider_ref": v.provider_ref,
                "fingerprint": v.fingerprint,
                "created_at": _iso(v.created_at),
                "promoted_at": _iso(v.promoted_at),
                "revoked_at": _iso(v.revoked_at),
                "value_stored": v.ciphertext is not None,
            }
            for v in repo.versions(s, record.id)
        ]
        rotations = []
        for r in s.exec(
            select(Rotation)
            .where(Rotation.secret_id == record.id)
            .order_by(col(Rotation.created_at))
        ):
            steps = [
                {
                    "step": st.step,
                    "status": st.status,
                    "actor": st.actor,
                    "started_at": _iso(st.started_at),
                    "finished_at": _iso(st.finished_at),
                }
                for st in s.exec(
                    select(StepRecord)
                    .where(StepRecord.rotation_id == r.id)
                    .order_by(col(StepRecord.id))
                )
            ]
            approvals = [
                {"kind": a.kind, "actor": a.actor, "note": a.note, "at": _iso(a.at)}
                for a in s.exec(select(Approval).where(Approval.rotation_id == r.id))
            ]
            rotations.append(
                {
                    "id": r.id,
                    "kind": r.kind,
                    "cycle": r.cycle,
                    "state": r.state,
                    "actor": r.actor,
                    "reason": r.reason,
                    "created_at": _iso(r.created_at),
                    "finished_at": _iso(r.finished_at),
                    "last_error": r.last_error,
                    "steps": steps,
                    "approvals": approvals,
                }
            )
    return {
        "secret": unit.spec.name,
        "scope": unit.scope_env,
        "versions": versions,
        "rotations": rotations,
    }


def _iso(value: datetime | None) -> str | None:
    return as_utc(value).isoformat() if value else None


def emergency_many(
    engine: Engine,
    units: list[Unit],
    reason: str = "mass emergency",
    *,
    workers: int = 16,
    on_progress: Any = None,
) -> list[Outcome]:
    """Rotate many secrets at once (see `rotator.mass_emergency`)."""
    from rotator.mass_emergency import emergency_many as run_many

    return run_many(engine, units, reason, workers=workers, on_progress=on_progress)


def select_units(
    engine: Engine, *, every: bool, provider: str | None, environment: str | None
) -> list[Unit]:
    """Pick the units of a mass emergency: all, or those of a provider or an environment."""
    units = engine.units()
    if provider is not None:
        known = {u.spec.provider for u in units}
        if provider not in known:
            raise UnknownNameError(
                f"no secret uses provider {provider!r}; the inventory uses: "
                + ", ".join(sorted(known))
            )
        units = [u for u in units if u.spec.provider == provider]
    if environment is not None:
        engine.rt.inventory.environment(environment)
        units = [u for u in units if environment in u.spec.deploy_envs(u.scope_env)]
    if not (every or provider or environment):
        raise UnknownNameError("name a SECRET, or select with --all, --provider or --in-env")
    return units
