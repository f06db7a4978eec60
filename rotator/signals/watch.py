"""Watch an environment's signals for a rotation: the gates' eyes (issue 15).

Each run looks at the time since the previous look (from the change: staging from
`staged_at`, production from `promoted_at`), so the whole soak and the whole monitoring
window are judged, slice by slice, with no hour left out and no hour diluted by a month.
The baseline is the same length just before the change (the strategy's "baseline vs
current"). A slice whose sources did not answer is not counted as seen: the next look
covers it again, and the machine's `signals_answered` gate holds the step meanwhile.

What each verdict means (the machine decides, through events):
- production degraded after promotion: `health-failed`, the automatic rollback;
- staging degraded before promotion: `degraded`, the rotation stops for a person, and
  production is never promoted;
- unknown: recorded (`signals_unknown_since`); a person is told once the grace is over.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from rotator import repository as repo
from rotator.signals.base import DEGRADED, OK, UNKNOWN, Signal, SignalContext, Span, Verdict
from rotator.work import Unit, when

if TYPE_CHECKING:
    from rotator.engine import Engine

MIN_SLICE = timedelta(minutes=1)


def signals_for(engine: Engine, env: str, *, health: bool = True) -> list[Signal]:
    """The environment's signals: the health URL (when set) and the inventory's others.

    Without `health`, the health URL is left out: it has no history to look back on, and
    staging's is checked by the steps themselves (stage, validate), as it always was.
    """
    cache: dict[str, list[Signal]] = engine.__dict__.setdefault("_signals", {})
    if env not in cache:
        from rotator.signals.base import get_signal

        environment = engine.rt.inventory.environment(env)
        built: list[Signal] = []
        if environment.health_path is not None:
            built.append(get_signal("health-url")({}, env))
        for spec in environment.signals:
            built.append(get_signal(spec.kind)(spec.options, env))
        cache[env] = built
    return cache[env] if health else [x for x in cache[env] if x.kind != "health-url"]


def watched(engine: Engine, envs: tuple[str, ...]) -> bool:
    """True when one of `envs` has a signal besides its health URL (checked every run)."""
    return any(engine.rt.inventory.environment(e).signals for e in envs)


def context(engine: Engine, env: str) -> SignalContext:
    from rotator.health import HealthCheck
    from rotator.publishing import health_confirmation

    environment = engine.rt.inventory.environment(env)
    check = None
    if environment.health_path is not None:
        failures, span = health_confirmation(engine)
        check = HealthCheck(
            environment.url,
            environment.health_path,
            environment.expected_status,
            attempts=failures,
            delay=span.total_seconds() / max(1, failures - 1),
        )
    return SignalContext(
        engine.rt.http, engine.rt.credentials, env, health=check, sleep=engine.rt.sleep
    )


def judge(
    engine: Engine, env: str, change_at: datetime, since: datetime, now: datetime, health: bool
) -> list[Verdict]:
    """Every signal of `env` over `since`..`now`, against the same length before the change."""
    start = min(since, now - MIN_SLICE)
    length = now - start
    span = Span(start, now, change_at - length, change_at)
    ctx = context(engine, env)
    verdicts = []
    for signal in signals_for(engine, env, health=health):
        try:
            verdicts.append(signal.verdict(ctx, span))
        except Exception as exc:  # a plugin's bug must not pass silently, nor stop the run
            verdicts.append(
                Verdict(signal.kind, env, UNKNOWN, f"the signal failed ({type(exc).__name__})")
            )
    return verdicts


def overall(verdicts: list[Verdict]) -> str:
    statuses = {v.status for v in verdicts}
    if DEGRADED in statuses:
        return DEGRADED
    return UNKNOWN if UNKNOWN in statuses else OK


def watch(
    engine: Engine,
    rotation_id: str,
    fence: int,
    unit: Unit,
    envs: tuple[str, ...],
    *,
    stage: bool,
    audit_ok: bool = True,
) -> str:
    """Look at `envs` since the last look; record, audit and act; return ok/degraded/unknown.

    `audit_ok=False` (staging's daily look between the gates) audits only what is not ok:
    the figures are kept on the rotation, and audited when a gate step is about to run.
    """
    from rotator.publishing import health_failed

    now = engine.rt.clock()
    with engine.rt.store.read() as s:
        rotation = repo.fenced(s, rotation_id, fence)
        facts = repo.facts_of(rotation)
    change_at = when(facts.get("staged_at" if stage else "promoted_at")) or now
    seen: dict[str, Any] = dict(facts.get("watched_until") or {})
    results: dict[str, list[Verdict]] = {}
    starts: dict[str, datetime] = {}
    for env in envs:
        since = when(seen.get(env)) or change_at
        starts[env] = min(since, now - MIN_SLICE)
        results[env] = judge(engine, env, change_at, since, now, health=not stage)
    status, degraded_env, detail = OK, None, ""
    for env, verdicts in results.items():
        env_status = overall(verdicts)
        if env_status == DEGRADED and degraded_env is None:
            status, degraded_env = DEGRADED, env
            detail = "; ".join(v.line() for v in verdicts if v.status == DEGRADED)
        elif env_status == UNKNOWN and status == OK:
            status = UNKNOWN
            detail = "; ".join(v.line() for v in verdicts if v.status == UNKNOWN)
        if env_status != UNKNOWN:
            seen[env] = now.isoformat()
    unknown_since = when(facts.get("signals_unknown_since"))
    if status == UNKNOWN:
        unknown_since = unknown_since or now
    elif not any(overall(v) == UNKNOWN for v in results.values()):
        unknown_since = None
    with engine.rt.store.write() as s:
        rotation = repo.fenced(s, rotation_id, fence)
        figures = {env: [v.to_json() for v in vs] for env, vs in results.items()}
        repo.set_facts(
            rotation,
            watched_until=seen,
            signals_unknown_since=unknown_since.isoformat() if unknown_since else None,
            signals={**(facts.get("signals") or {}), **figures},
            signals_checked_at=now.isoformat(),
        )
        for env, verdicts in results.items():
            health = [v for v in verdicts if v.signal == "health-url"]
            if not stage and health:
                engine.audit(
                    s,
                    "health.checked",
                    unit=unit,
                    rotation_id=rotation_id,
                    environment_checked=env,
                    healthy=health[0].status == OK,
                    detail=None if health[0].status == OK else health[0].reason,
                )
            if engine.rt.inventory.environment(env).signals and (
                audit_ok or overall(verdicts) != OK
            ):
                engine.audit(
                    s,
                    "signals.checked",
                    unit=unit,
                    rotation_id=rotation_id,
                    environment_checked=env,
                    status=overall(verdicts),
                    span_start=starts[env].isoformat(),
                    span_end=now.isoformat(),
                    signals=figures[env],
                )
        if status == DEGRADED and degraded_env is not None:
            if stage:
                text = (
                    f"{unit.label}: {degraded_env} is degraded since the new value was staged: "
                    f"{detail}. Production was NOT promoted. Look at the errors, then run "
                    f"`rotate resume {unit.spec.name}{unit.env_flag}` to go on or `rotate abort "
                    f"{unit.spec.name}{unit.env_flag}` to put staging back on the current value"
                )
                repo.set_facts(rotation, degraded=text)
                engine.change_state(
                    s,
                    rotation,
                    "degraded",
                    unit=unit,
                    environment_degraded=degraded_env,
                    detail=detail,
                )
                rotation.last_error = text
                s.add(rotation)
            else:
                health_failed(engine, s, rotation, unit, degraded_env, f"monitoring: {detail}")
    tell(engine, unit, status, degraded_env, detail, stage, unknown_since, now)
    return status


def tell(
    engine: Engine,
    unit: Unit,
    status: str,
    env: str | None,
    detail: str,
    stage: bool,
    unknown_since: datetime | None,
    now: datetime,
) -> None:
    """Say what was seen: a line of progress, and a notification when people must know."""
    if status == DEGRADED:
        what = (
            "production was not promoted; the rotation waits for a person"
            if stage
            else "rolling back automatically to the previous value"
        )
        engine.rt.progress(f"{unit.label}: {env} degraded: {detail}")
        engine.notify(
            "signal-degraded",
            f"{unit.label}: {env} is degraded after the change: {detail}. {what}.",
            unit=unit,
        )
    elif status == UNKNOWN and unknown_since is not None:
        from rotator.planning import signal_grace

        grace = signal_grace(engine)
        late = now >= unknown_since + grace
        engine.rt.progress(
            f"{unit.label}: {detail}; "
            + (
                "no answer for longer than the grace: the step waits for a person"
                if late
                else f"the step waits (grace until {unknown_since + grace:%Y-%m-%d %H:%M %Z})"
            )
        )
        if late:
            engine.notify(
                "person-needed",
                f"{unit.label}: the monitoring signals have not answered since "
                f"{unknown_since:%Y-%m-%d %H:%M %Z}, longer than the grace ({grace}); the step "
                f"waits rather than pass unseen.\n{detail}\nRestore the source or its "
                "credential (`rotate check`), then the next run goes on.",
                unit=unit,
            )
