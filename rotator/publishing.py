"""Publish values to environments and judge their health: the targets' side of a step.

A publish is recorded before (the version joins each target's set: it may be served from
now on) and after (the set becomes that version), see `rotator.deployments`. Health is a
verdict only after `health_failures` failed checks over `health_span`: one flaky answer
never starts a rollback. A failed check after promote is not a failed step: the promotion
is recorded and the machine answers with its rollback.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlmodel import Session

from rotator import machine as m
from rotator import repository as repo
from rotator.deployments import mark as mark_served
from rotator.errors import HealthCheckError
from rotator.secret import Secret
from rotator.store.models import CredentialVersion, Rotation, SecretRecord
from rotator.work import Apply, Outcome, Unit, Work, status_of

if TYPE_CHECKING:
    from rotator.engine import Engine


def publish_env(engine: Engine, env: str, values: dict[str, Secret]) -> list[str]:
    """Publish to every target of `env`, then finish each; return what they report.

    The report says which Pages deployment was rebuilt and why, which variables a target
    left alone because it does not hold them: for the step's output and audit event.
    """
    targets = engine.rt.targets(env)
    for target in targets:
        target.publish(values)
    lines: list[str] = []
    for target in targets:
        target.finish()
        for line in target.report():
            engine.rt.progress(f"{env}: {line}")
            lines.append(f"{env}: {line}")
    return lines


def after_publish(engine: Engine, work: Work, envs: tuple[str, ...]) -> tuple[Apply, str]:
    """Check health where the value went; for an emergency stage, validate too.

    A failed check after promote is not a failed step: production serves the new
    value, so the promotion is recorded, and the machine answers with a rollback.
    """
    provider = engine.rt.provider(work.unit.spec.provider)
    assert work.pending is not None
    pending_id = work.pending[0].id
    targets = deploy_targets(engine, work.unit)
    published = {e: targets.get(e, []) for e in envs}
    if work.step == "stage":
        if work.kind == m.EMERGENCY:
            # Validation first: it waits out the provider's propagation window, so the
            # health check that follows judges a value the provider already accepts.
            provider.validate(engine.ctx(work), work.pending[1])
        for env in envs:
            require_healthy(engine, env)
        staged_at = engine.rt.clock().isoformat()

        def staged(s: Session, rotation: Rotation) -> None:
            mark_served(
                s,
                rotation.secret_id,
                published,
                pending_id,
                confirmed=True,
                current=work.current_id,
                at=engine.rt.clock(),
            )
            repo.set_facts(rotation, staged_at=staged_at)
            engine.change_state(s, rotation, "done", unit=work.unit)

        return staged, ""
    failed_env, detail = None, ""
    for env in envs:
        ok, detail = healthy(engine, env)
        if not ok:
            failed_env = env
            break
    promoted_at = engine.rt.clock()

    def promoted(s: Session, rotation: Rotation) -> None:
        mark_served(
            s,
            rotation.secret_id,
            published,
            pending_id,
            confirmed=True,
            current=work.current_id,
            at=promoted_at,
        )
        record = s.get(SecretRecord, rotation.secret_id)
        assert record is not None
        old = repo.version_in(s, record.id or 0, repo.CURRENT)
        new = repo.version_in(s, record.id or 0, repo.PENDING)
        if old is not None:
            m.move_version(old, repo.PREVIOUS)
            s.add(old)
        if new is not None:
            m.move_version(new, repo.CURRENT)
            new.promoted_at = promoted_at
            s.add(new)
        repo.set_facts(rotation, promoted_at=promoted_at.isoformat())
        engine.change_state(s, rotation, "done", unit=work.unit)
        engine.audit(
            s,
            "credential.promoted",
            unit=work.unit,
            rotation_id=rotation.id,
            version=new.id if new else None,
            previous=old.id if old else None,
            **promotion_window(engine, work, promoted_at),
        )
        if failed_env is not None:
            health_failed(engine, s, rotation, work.unit, failed_env, detail)

    return promoted, (f"{failed_env} is unhealthy: rolling back" if failed_env else "")


def promotion_window(engine: Engine, work: Work, at: datetime) -> dict[str, Any]:
    """Say, for the trail, whether production moved inside the maintenance window.

    The auditor's report judges each promotion from the event alone, so the event
    carries the window as it was configured then: an emergency is not bound by it.
    """
    if work.kind == m.EMERGENCY:
        return {"window": "none (an emergency is not bound by the maintenance window)"}
    from rotator.planning import schedule

    inv = engine.rt.inventory
    w = inv.window
    text = (
        f"{', '.join(w.days)} {w.start.strftime('%H:%M')}-{w.end.strftime('%H:%M')} {inv.time_zone}"
    )
    return {"window": text, "in_window": schedule(engine)[0].contains(at)}


def health_failed(
    engine: Engine, s: Session, rotation: Rotation, unit: Unit, env: str, detail: str
) -> None:
    """Record a confirmed failure after promotion; the machine answers `rollback`."""
    before = repo.facts_of(rotation).get("health_before", {})
    earlier = before.get(env) if isinstance(before, dict) else None
    repo.set_facts(rotation, rollback_reason=detail, failed_env=env)
    engine.change_state(
        s,
        rotation,
        "health-failed",
        unit=unit,
        environment_failed=env,
        detail=detail,
        failing_before=earlier if earlier and earlier != "ok" else None,
    )


def republish(
    engine: Engine, work: Work, env: str, version: tuple[CredentialVersion, Secret]
) -> None:
    """Publish one stored version to one environment, recorded before and after."""
    targets = {env: deploy_targets(engine, work.unit).get(env, [])}
    with engine.rt.store.write() as s:
        repo.fenced(s, work.rotation_id, work.fence)
        mark_served(
            s,
            version[0].secret_id,
            targets,
            version[0].id,
            confirmed=False,
            current=work.current_id,
            at=engine.rt.clock(),
        )
    report = publish_env(engine, env, {work.unit.spec.variable: version[1]})
    with engine.rt.store.write() as s:
        repo.fenced(s, work.rotation_id, work.fence)
        mark_served(
            s,
            version[0].secret_id,
            targets,
            version[0].id,
            confirmed=True,
            current=work.current_id,
            at=engine.rt.clock(),
        )
        engine.audit(
            s,
            "deployment.restored",
            unit=work.unit,
            rotation_id=work.rotation_id,
            environment_restored=env,
            version=version[0].id,
            targets=targets[env],
            report=report or None,
        )


def unserve(engine: Engine, work: Work, version_ids: list[str]) -> None:
    """Put the current value back wherever a credential about to be retired is served."""
    served = sorted({t.split(":", 1)[0] for v in version_ids for t in work.served.get(v, [])})
    if not served or work.current is None:
        return
    for env in production_first(served, None):
        engine.rt.progress(
            f"{work.unit.label}: {env} serves a credential about to be retired; "
            "putting the current one back first"
        )
        republish(engine, work, env, work.current)
        require_healthy(engine, env)
    for vid in version_ids:
        work.served[vid] = []


def require_healthy(engine: Engine, env: str) -> None:
    from rotator.health import HealthCheck, require_healthy

    environment = engine.rt.inventory.environment(env)
    if environment.health_path is None:
        return
    failures, span = health_confirmation(engine)
    check = HealthCheck(
        environment.url,
        environment.health_path,
        environment.expected_status,
        attempts=failures,
        delay=span.total_seconds() / max(1, failures - 1),
    )
    require_healthy(check, engine.rt.http, environment=env, sleep=engine.rt.sleep)


def health_confirmation(engine: Engine) -> tuple[int, timedelta]:
    """How many failed checks, over how long, make an environment unhealthy.

    One failed request is not a verdict (a flaky endpoint, a 429): a rollback starts
    only after `health_failures` consecutive failures spanning `health_span`.
    """
    from schedules import parse_duration

    inv = engine.rt.inventory
    return inv.health_failures, parse_duration(inv.health_span)


def healthy(engine: Engine, env: str) -> tuple[bool, str]:
    try:
        require_healthy(engine, env)
    except HealthCheckError as exc:
        return False, str(exc)
    return True, ""


def publish_batch(engine: Engine, batch: list[Work]) -> list[Outcome]:
    """Publish every value of a batch: each environment's targets finish once."""
    by_env: dict[str, dict[str, Secret]] = {}
    plan: list[tuple[Work, tuple[str, ...]]] = []
    for work in batch:
        if work.pending is None:
            plan.append((work, ()))
            continue
        envs = work.unit.stage_envs if work.step == "stage" else work.unit.promote_envs
        plan.append((work, envs))
        for env in envs:
            by_env.setdefault(env, {})[work.unit.spec.variable] = work.pending[1]
    env_errors: dict[str, Exception] = {}
    reports: dict[str, list[str]] = {}
    for env, values in by_env.items():
        try:
            reports[env] = publish_env(engine, env, values)
        except Exception as exc:
            env_errors[env] = exc
    outcomes = []
    for work, envs in plan:
        try:
            for env in envs:
                if env in env_errors:
                    raise env_errors[env]
            apply, failure = after_publish(engine, work, envs)
        except Exception as exc:
            result = engine.fail_or_wait(work, exc)
            outcomes.append(
                Outcome(
                    work.unit.label,
                    status_of(result),
                    [work.step],
                    engine.last_error(work.rotation_id),
                )
            )
            continue
        engine.finish(work, apply, report=[line for e in envs for line in reports.get(e, [])])
        if failure:
            engine.rt.progress(f"{work.unit.label}: {work.step} done, but {failure}")
            outcomes.append(Outcome(work.unit.label, "done", [work.step], failure))
            continue
        engine.rt.progress(f"{work.unit.label}: {work.step} ok")
        outcomes.append(Outcome(work.unit.label, "done", [work.step]))
    return outcomes


def deploy_targets(engine: Engine, unit: Unit) -> dict[str, list[str]]:
    """Name the targets of every environment `unit` is published to (cached per run)."""
    cache: dict[str, list[str]] = engine.__dict__.setdefault("_target_names", {})
    out: dict[str, list[str]] = {}
    for env in (*unit.stage_envs, *unit.promote_envs):
        if env not in cache:
            cache[env] = [t.describe() for t in engine.rt.targets(env)]
        out[env] = cache[env]
    return out


def production_first(envs: list[str], failed: object) -> list[str]:
    """Order environments for a restore: the failed one, then production, then the rest."""
    return sorted(envs, key=lambda e: (e != failed, e != "production", e))
