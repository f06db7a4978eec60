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
from rotator.deployments import table as deployment_table
from rotator.engine import Engine, Outcome, Unit
from rotator.errors import (
    BadInputError,
    ClaimedElsewhereError,
    ProviderRefusedError,
    RefusedError,
    RetryLaterError,
    UnknownNameError,
)
from rotator.secret import Secret
from rotator.store.models import Approval, Rotation, StepRecord
from rotator.store.status import status as status

CONFIRM_ATTEMPTS = 6
CONFIRM_DELAY = 5.0
CLAIM_WAIT = 60.0
REPEAT_WINDOW = timedelta(hours=1)
"""Within this span after an emergency completed, running it again reports that one."""


def _refuse(engine: Engine, unit: Unit, command: str, reason: str) -> RefusedError:
    return engine.refuse(unit, command, RefusedError(reason))


_MEANT_FOR_FLIGHT = frozenset({"abort", "rollback"})


def _rotation_for(engine: Engine, unit: Unit, command: str) -> Rotation:
    """Find the rotation a command applies to, refusing (audited) when the state forbids it."""
    refusal: RefusedError | None = None
    with engine.rt.store.read() as s:
        record = repo.find_secret(s, unit.spec.name, unit.scope_env)
        rotations = repo.active_rotations(s, record.id or 0) if record else []
        now = engine.rt.clock()
        # The rotation in flight first, then emergencies: they supersede anything quarterly.
        for rotation in sorted(
            rotations,
            key=lambda r: (not m.in_flight(r.state, r.active), r.kind != m.EMERGENCY),
        ):
            try:
                m.check_command(command, engine.facts(s, rotation, unit, now))
                return rotation
            except RefusedError as exc:
                refusal = refusal or exc
                if command in _MEANT_FOR_FLIGHT and m.in_flight(rotation.state, rotation.active):
                    # The person means the rotation in flight: its refusal is the answer,
                    # not a quiet abort of next quarter's planned cycle.
                    break
    if refusal is None:
        refusal = RefusedError(
            f"no rotation of {unit.label} is in flight; `rotate status` shows its state"
        )
    raise engine.refuse(unit, command, refusal)


def _verify_import(engine: Engine, unit: Unit, value: Secret, ref: str | None) -> None:
    """Refuse a value the provider does not accept, or one that is not the `ref` given.

    Found now, a wrong value is one command away from fixed; found by an emergency, it
    is production broken at the worst moment.
    """
    rt = engine.rt
    provider = rt.provider(unit.spec.provider)
    ctx = rt.provider_context(unit.spec, unit.scope_env, "import", current_ref=ref)
    try:
        provider.validate(ctx, value)
    except ProviderRefusedError as exc:
        raise BadInputError(
            f"{unit.label}: {unit.spec.provider} does not accept the value given ({exc}); "
            "nothing was recorded. Paste the value the app uses today"
        ) from None
    except RetryLaterError as exc:
        raise RetryLaterError(
            f"{exc}; the value could not be verified, so nothing was recorded: try again, "
            "or import with --no-verify on a host that cannot reach the provider",
            retry_after=exc.retry_after,
        ) from None
    if ref and provider.names_ref(ctx, ref, value) is False:
        raise BadInputError(
            f"{unit.label}: the value given is not the credential {ref} at "
            f"{unit.spec.provider}; nothing was recorded. Give the --ref of the credential "
            "whose value you pasted"
        )


def import_value(
    engine: Engine,
    unit: Unit,
    value: Secret,
    ref: str | None,
    *,
    replace: bool = False,
    verify: bool = True,
) -> str:
    """Record the value in use today as the current credential of `unit`.

    The reference is checked with the provider and stored in the form it revokes by (a
    GCP key id becomes its resource name). With `replace`, a wrong recorded current value
    or reference is corrected in place (audited, with both fingerprints), as long as no
    rotation of the unit is in flight.
    """
    rt = engine.rt
    with rt.store.read() as s:
        record_ = repo.find_secret(s, unit.spec.name, unit.scope_env)
        exists = record_ is not None and repo.version_in(s, record_.id or 0, repo.CURRENT)
        busy = [
            r.id
            for r in (repo.active_rotations(s, record_.id or 0) if record_ else [])
            if m.in_flight(r.state, r.active)
        ]
    if exists and not replace:
        raise _refuse(
            engine,
            unit,
            "import",
            f"{unit.label} already has a current value; rotate it instead, or correct a "
            "wrong recorded value or reference with `rotate import --replace`",
        )
    if replace and busy:
        raise _refuse(
            engine,
            unit,
            "import",
            f"rotation {busy[0]} of {unit.label} is in flight; finish or abort it before "
            "replacing the recorded current value",
        )
    if ref:
        ctx = rt.provider_context(unit.spec, unit.scope_env, "import")
        ref = rt.provider(unit.spec.provider).canonical_ref(ctx, ref)
    if verify:
        _verify_import(engine, unit, value, ref)
    with rt.store.write() as s:
        record = engine.record(s, unit)
        fingerprint = rt.fingerprint(value)
        old = repo.version_in(s, record.id or 0, repo.CURRENT) if replace else None
        if old is not None:
            before = (old.fingerprint, old.provider_ref)
            repo.replace_value(s, rt.master_key, record, old, value, ref, fingerprint)
            engine.audit(
                s,
                "credential.import_replaced",
                unit=unit,
                version=old.id,
                fingerprint=fingerprint,
                provider_ref=ref,
                verified=verify,
                was_fingerprint=before[0],
                was_provider_ref=before[1],
            )
            version_id = old.id
        else:
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
                verified=verify,
            )
            version_id = version.id
    engine.checkpoint()
    return version_id


def start_emergency(engine: Engine, unit: Unit, reason: str, *, again: bool = False) -> str:
    """Record the emergency (assess) and supersede a quarterly cycle in flight.

    Re-running it joins the emergency in flight (a failed one is resumed); within
    `REPEAT_WINDOW` of one that completed, it reports that one unless `again` is set.
    """
    rt = engine.rt
    if not reason.strip():
        raise _refuse(engine, unit, "emergency", "an emergency needs --reason (what leaked, how)")
    from rotator.rewrap import check_key_ids

    # A master key that cannot read the stored values would stop the emergency after
    # it is recorded; refuse before anything is written.
    check_key_ids(rt.store, rt.master_key)
    existing = _emergency_of(engine, unit, again=again)
    if existing is not None:
        return existing
    health = _health_before(engine, unit)
    deadline = rt.clock() + timedelta(seconds=CLAIM_WAIT)
    while True:
        try:
            return _assess(engine, unit, reason, health)
        except ClaimedElsewhereError:
            if rt.clock() >= deadline:
                raise
            rt.progress("waiting for another runner to release this secret...")
            rt.sleep(2.0)


class EmergencyFinished(Exception):
    """An emergency of this unit completed moments ago; `--again` starts another."""

    def __init__(self, message: str, rotation_id: str) -> None:
        super().__init__(message)
        self.rotation_id = rotation_id


def _emergency_of(engine: Engine, unit: Unit, *, again: bool) -> str | None:
    """Return the emergency to join (in flight, or failed: resumed), or None for a new one."""
    rt = engine.rt
    now = rt.clock()
    with rt.store.read() as s:
        record = repo.find_secret(s, unit.spec.name, unit.scope_env)
        if record is None:
            return None
        latest = s.exec(
            select(Rotation)
            .where(Rotation.secret_id == record.id, Rotation.kind == m.EMERGENCY)
            .order_by(col(Rotation.created_at).desc())
        ).first()
    if latest is None:
        return None
    if latest.active and latest.state == m.FAILED:
        rt.progress(f"{unit.label}: resuming the emergency {latest.id} that stopped")
        resume_rotation(engine, latest.id, unit)
        return latest.id
    if latest.active:
        rt.progress(f"{unit.label}: joining the emergency {latest.id} already in flight")
        return latest.id
    finished = as_utc(latest.finished_at) if latest.finished_at else None
    if (
        not again
        and latest.state == m.COMPLETED
        and finished is not None
        and now - finished < REPEAT_WINDOW
    ):
        raise EmergencyFinished(
            f"{unit.label}: emergency {latest.id} completed at {finished.isoformat()} "
            f"(reason: {latest.reason}); its compromised credentials are revoked. "
            "Run with --again to start another emergency.",
            latest.id,
        )
    return None


def _health_before(engine: Engine, unit: Unit) -> dict[str, str]:
    """Check every environment the emergency will touch, before touching it.

    So that a failure after promotion can be told apart: "my change broke it" or
    "it was broken before".
    """
    found: dict[str, str] = {}
    # A mass emergency asks once per environment, not once per secret: an answer from
    # the last minute stands for this one too.
    memo: dict[str, tuple[datetime, str]] = engine.__dict__.setdefault("_health_before", {})
    now = engine.rt.clock()
    for env in (*unit.stage_envs, *unit.promote_envs):
        seen = memo.get(env)
        if seen is not None and now - seen[0] < timedelta(minutes=1):
            found[env] = seen[1]
            continue
        ok, detail = engine.healthy(env)
        found[env] = "ok" if ok else detail
        memo[env] = (now, found[env])
        if not ok:
            engine.rt.progress(
                f"warning: {env} is already unhealthy before the emergency starts: {detail}"
            )
    return found


def _assess(engine: Engine, unit: Unit, reason: str, health: dict[str, str]) -> str:
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
    from sqlalchemy.exc import IntegrityError

    try:
        return _assess_once(engine, unit, reason, health, now)
    except IntegrityError:
        # Another emergency for this unit was inserted first (the one-in-flight index):
        # join it rather than start a second one.
        joined = _emergency_of(engine, unit, again=False)
        if joined is None:
            raise
        rt.progress(f"{unit.label}: another emergency started at the same moment; joined it")
        return joined


def _assess_once(
    engine: Engine, unit: Unit, reason: str, health: dict[str, str], now: datetime
) -> str:
    from audit.trail import lock_head

    rt = engine.rt
    with rt.store.write() as s:
        # The trail's lock first, as the planner takes it: two emergencies (or an
        # emergency and a planner) then queue instead of deadlocking.
        lock_head(s)
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
        superseded: list[tuple[str, str, str]] = []
        for rotation in active:
            if rotation.state == m.REVOKED and rotation.kind == m.QUARTERLY:
                continue  # only its review is left; the emergency does not undo it
            was = rotation.state
            rotation.fence += 1  # a runner still holding it loses its claim
            engine.change_state(s, rotation, "supersede", unit=unit)
            superseded.append((rotation.id, rotation.cycle or "-", was))
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
            superseded=[rid for rid, _, _ in superseded],
            health_before=health,
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
            superseded=[rid for rid, _, _ in superseded],
            health_before=health,
        )
        for rid, _, _ in superseded:
            engine.audit(s, "rotation.superseded", unit=unit, rotation_id=rid, by=emergency.id)
    for rid, cycle, was in superseded:
        rt.progress(
            f"{unit.label}: superseded the quarterly cycle {cycle} (rotation {rid}, {was}): "
            "its credentials are treated as compromised too; an environment serving its "
            "pending credential goes back to the current one before it is retired"
        )
    engine.notify(
        "emergency-started",
        f"Emergency rotation of {unit.label} started by {rt.actor}. Reason: {reason}. "
        f"{len(live)} credential(s) are treated as compromised and will be revoked.",
        unit=unit,
    )
    return emergency.id


def drive(engine: Engine, rotation_id: str, *, max_wait: float = 900.0) -> Outcome:
    """Advance one rotation until it finishes, waits for a date or a person, or fails.

    It retries a step that asked to be retried (within the step's budget), and waits
    for another runner that holds the rotation; it never waits for a date (monitoring
    after a promotion is checked by each `rotate run`, not held open here).
    """
    rt = engine.rt
    waited = 0.0
    while True:
        outcome, _ = engine.advance(rotation_id)
        with rt.store.read() as s:
            rotation = s.get(Rotation, rotation_id)
            assert rotation is not None
            state, next_at = rotation.state, rotation.next_check_at
        if state in m.TERMINAL or state in m.PERSON_STATES:
            return outcome
        if outcome.status in ("failed", "waiting", "done", "person"):
            # "failed" without a failed state: the step could not even begin (a wrong
            # master key, the database); waiting and trying again cannot mend it. A
            # wait for a date or a person is for `rotate run` and people, not a loop.
            return outcome
        delay = 1.0 if outcome.status == "claimed" else 0.0
        if outcome.status == "retrying" and next_at is not None:
            delay = max(0.0, (as_utc(next_at) - rt.clock()).total_seconds())
        if waited + max(delay, 1.0) > max_wait:
            return outcome
        if outcome.status == "claimed":
            rt.progress(f"{outcome.unit}: another runner holds it; waiting")
        else:
            rt.progress(f"{outcome.unit}: retrying in {delay:.0f} s ({outcome.message})")
        rt.sleep(max(delay, 1.0) if outcome.status == "claimed" else delay)
        waited += max(delay, 1.0)
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
    # A used value never becomes current (DESIGN §4.10): the compromised key handed
    # back by mistake, an old one, or another environment's value is refused first.
    known = engine.known_fingerprint(unit, rt.fingerprint(value))
    if known:
        raise _refuse(
            engine,
            unit,
            "supply",
            f"the value supplied is {known}; a used or compromised value never becomes "
            "current again: create a NEW credential at the provider and supply that one",
        )
    # Check the value before recording anything: a wrong or mistyped value leaves the
    # rotation exactly as it was, still awaiting a value.
    generated = provider.accept_supplied(
        rt.provider_context(unit.spec, unit.scope_env, rotation.id), value
    )
    with engine.claimed(rotation.id) as fence:
        work = engine.begin(rotation.id, fence, "generate")
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
            engine.mark_revoked(s, work, retired)
            engine.store_pending(s, work, r, generated.value, generated.ref, {}, fingerprint)
            engine.audit(
                s, "credential.supplied", unit=unit, rotation_id=r.id, fingerprint=fingerprint
            )
            engine.change_state(s, r, "answered", unit=unit)

        engine.finish(work, apply)
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
    peek = engine.begin(rotation.id, 0, "revoke", intent=False)
    ctx = engine.ctx(peek)
    served = [
        f"{v.id} ({', '.join(peek.served[v.id])})"
        for v, _ in peek.to_revoke
        if peek.served.get(v.id)
    ]
    if served:
        raise engine.refuse(
            unit,
            "confirm revoke",
            RefusedError(
                f"{unit.label}: credential {'; '.join(served)} is still served; it must not "
                "be revoked while a target serves it (`rotate show` lists what each serves)"
            ),
        )
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
                f"{unit.label}: the provider still accepts the credential to revoke; "
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
        work = engine.begin(rotation.id, fence, "revoke")
        ids = [v.id for v, _ in work.to_revoke]

        def apply(s: Session, r: Rotation) -> None:
            engine.mark_revoked(s, work, ids)
            engine.audit(s, "step.confirmed", unit=unit, rotation_id=r.id, step="revoke")
            engine.change_state(s, r, "answered", unit=unit)

        engine.finish(work, apply)
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
        found = s.get(Rotation, rotation.id)
        if found is not None:
            found.next_check_at = engine.rt.clock()  # promotion may be due at once
            s.add(found)
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
        engine.audit(s, "rotation.reviewed", unit=unit, rotation_id=r.id, note=note)
        engine.change_state(s, r, "done", unit=unit)
    engine.checkpoint()
    return rotation.id


def rollback(engine: Engine, unit: Unit, reason: str, *, abort: bool = False) -> Outcome:
    """Put the previous value back everywhere and discard the new credential.

    The command only records the person's decision; the machine then answers with its
    rollback sequence, which `drive` performs (and `rotate resume` finishes if it stops).
    """
    command = "abort" if abort else "rollback"
    if not reason.strip():
        raise _refuse(engine, unit, command, f"{command} needs --reason")
    rotation = _rotation_for(engine, unit, command)
    with engine.claimed(rotation.id) as fence, engine.rt.store.write() as s:
        r = repo.fenced(s, rotation.id, fence)
        repo.set_facts(r, rollback_reason=f"{command} by {engine.rt.actor}: {reason}")
        r.next_check_at = engine.rt.clock()
        engine.change_state(s, r, command, unit=unit, reason=reason)
    outcome = drive(engine, rotation.id)
    engine.checkpoint()
    with engine.rt.store.read() as s:
        found = s.get(Rotation, rotation.id)
        state = found.state if found else ""
    # The person asked for it: a rollback that finished is this command's success.
    if state in (m.ROLLED_BACK, m.ABORTED):
        return Outcome(unit.label, "done", outcome.steps, state)
    if state in m.PERSON_STATES and state != m.FAILED:
        return Outcome(unit.label, "person", outcome.steps, state)
    return outcome


def resume(engine: Engine, unit: Unit) -> Outcome:
    rotation = _rotation_for(engine, unit, "resume")
    outcome = resume_rotation(engine, rotation.id, unit)
    engine.checkpoint()
    return outcome


def resume_rotation(engine: Engine, rotation_id: str, unit: Unit) -> Outcome:
    """Send a failed rotation back to where it stopped, and drive it on from there."""
    with engine.claimed(rotation_id) as fence, engine.rt.store.write() as s:
        r = repo.fenced(s, rotation_id, fence)
        facts = repo.facts_of(r)
        r.attempts = 0
        r.last_error = None
        r.next_check_at = engine.rt.clock()
        engine.change_state(
            s, r, "resume", unit=unit, resume_to=facts.get("failed_state") or m.PLANNED
        )
        engine.audit(s, "rotation.resumed", unit=unit, rotation_id=r.id, state=r.state)
    return drive(engine, rotation_id)


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
                    "instruction": repo.facts_of(r).get("instruction")
                    if r.state in m.PERSON_STATES
                    else None,
                    # Each signal's last verdict and figures, per environment (issue 15).
                    "signals": repo.facts_of(r).get("signals"),
                    "steps": steps,
                    "approvals": approvals,
                }
            )
        current = repo.version_in(s, record.id, repo.CURRENT)
        serving = deployment_table(
            s, record.id, engine.deploy_targets(unit), current.id if current else None
        )
    return {
        "secret": unit.spec.name,
        "scope": unit.scope_env,
        "versions": versions,
        "rotations": rotations,
        "serving": serving,
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
