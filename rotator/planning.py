"""Open quarterly cycles and gather the facts the machine decides on.

Planning takes the audit trail's lock before inserting (two planners on PostgreSQL would
otherwise deadlock); the facts are read in the caller's transaction, so a decision and
the state it was made on are one snapshot.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, col, select

from rotator import machine as m
from rotator import repository as repo
from rotator.store.models import Rotation, SecretRecord
from rotator.work import Unit, when

if TYPE_CHECKING:
    from rotator.engine import Engine


def plan_cycles(engine: Engine, now: datetime) -> int:
    """Open the quarterly cycle whose month 1 holds `now` for every unit lacking one."""
    from schedules import current_cycle_start, month_gate

    inv = engine.rt.inventory
    cycle = current_cycle_start(now, inv.tz, inv.quarter_start_months)
    if now < month_gate(cycle, 1, inv.tz) or cycle.month_of(now.astimezone(inv.tz).date()) != 1:
        return 0
    from sqlalchemy.exc import IntegrityError, OperationalError

    for _ in range(3):
        try:
            return plan_missing(engine, cycle, now)
        except IntegrityError:
            # Another runner planned some of the same cycles first; look again.
            continue
        except OperationalError as exc:
            if "deadlock" not in str(exc).lower():
                raise
            continue  # the database chose this planner as the victim: look again
    return 0


def plan_missing(engine: Engine, cycle: Any, now: datetime) -> int:
    units = engine.units()
    created = 0
    with engine.rt.store.read() as s:
        have = set(
            s.exec(
                select(SecretRecord.name, SecretRecord.scope_env)
                .join(Rotation, col(Rotation.secret_id) == col(SecretRecord.id))
                .where(Rotation.cycle == cycle.id)
            ).all()
        )
    missing = [u for u in units if (u.spec.name, u.scope_env) not in have]
    if not missing:
        return 0
    with engine.rt.store.write() as s:
        # Take the audit trail's lock before inserting anything: two planners on
        # PostgreSQL would otherwise each hold a new rotation row the other waits on
        # while waiting for the trail's lock the other holds (a deadlock).
        from audit.trail import lock_head

        lock_head(s)
        for unit in missing:
            record = engine.record(s, unit)
            exists = s.exec(
                select(Rotation).where(Rotation.secret_id == record.id, Rotation.cycle == cycle.id)
            ).first()
            if exists is not None:
                continue
            rotation = Rotation(
                id=repo.new_id(),
                secret_id=record.id or 0,
                kind=m.QUARTERLY,
                cycle=cycle.id,
                state=m.PLANNED,
                actor=engine.rt.actor,
                created_at=now,
                updated_at=now,
                next_check_at=now,
            )
            s.add(rotation)
            s.flush()
            engine.audit(s, "cycle.planned", unit=unit, rotation_id=rotation.id, cycle=cycle.id)
            created += 1
    return created


def facts(engine: Engine, s: Session, rotation: Rotation, unit: Unit, now: datetime) -> m.Facts:
    from schedules import month_gate, parse_cycle_id

    inv = engine.rt.inventory
    rf = repo.facts_of(rotation)
    gates = None
    if rotation.kind == m.QUARTERLY and rotation.cycle:
        cycle = parse_cycle_id(rotation.cycle)
        g = tuple(month_gate(cycle, i, inv.tz) for i in (1, 2, 3, 4))
        gates = (g[0], g[1], g[2], g[3])
    window, soak, monitoring = schedule(engine)
    inside = window.contains(now)
    opens = None if inside else window.next_open(now)[0]
    caps = engine.rt.provider(unit.spec.provider).capabilities
    approval_required = any(
        inv.environments[e].require_approval for e in unit.promote_envs if e in inv.environments
    )
    # Only an approval the tool itself wrote to the trail counts (a MAC under a key the
    # database never holds): a row inserted behind its back grants nothing. Imported here:
    # `rotate status` must not load the audit package's cryptography at start-up.
    from audit.trail import authenticated_approvals

    approved = rotation.state in (m.GENERATED, m.STAGED, m.VALIDATED) and bool(
        authenticated_approvals(s, rotation.id, kind="approval")
    )
    return m.Facts(
        kind=rotation.kind,
        state=rotation.state,
        now=now,
        month_gates=gates,
        live_credentials=repo.live_count(s, rotation.secret_id),
        has_current=repo.version_in(s, rotation.secret_id, repo.CURRENT) is not None,
        automated_generate=caps.automated_generate,
        automated_revoke=caps.automated_revoke,
        staged_at=when(rf.get("staged_at")),
        promoted_at=when(rf.get("promoted_at")),
        soak=soak,
        # An emergency's window is short (settings.emergency_monitoring; none by default).
        monitoring=monitoring if rotation.kind == m.QUARTERLY else emergency_window(engine),
        signals_unknown_since=when(rf.get("signals_unknown_since")),
        signal_grace=signal_grace(engine),
        in_window=inside,
        window_opens=opens,
        approval_required=approval_required,
        approved=approved,
        failed_state=rf.get("failed_state"),
        other_in_flight=next(
            (
                r.id
                for r in repo.active_rotations(s, rotation.secret_id)
                if r.id != rotation.id and m.in_flight(r.state, r.active)
            ),
            None,
        ),
    )


def emergency_window(engine: Engine) -> timedelta:
    from schedules import parse_duration

    return parse_duration(engine.rt.inventory.emergency_monitoring)


def signal_grace(engine: Engine) -> timedelta:
    from schedules import parse_duration

    return parse_duration(engine.rt.inventory.signal_grace)


def schedule(engine: Engine) -> tuple[Any, timedelta, timedelta]:
    """Return the production window, soak and monitoring, parsed once per engine."""
    memo: dict[str, tuple[Any, timedelta, timedelta]] = engine.__dict__.setdefault("_memo", {})
    cached = memo.get("schedule")
    if cached is None:
        from schedules import parse_duration, parse_window

        inv = engine.rt.inventory
        window = parse_window(
            list(inv.window.days),
            inv.window.start.strftime("%H:%M"),
            inv.window.end.strftime("%H:%M"),
            inv.time_zone,
        )
        cached = (window, parse_duration(inv.soak), parse_duration(inv.monitoring))
        memo["schedule"] = cached
    return cached
