"""Rotate many compromised secrets at once: `rotate emergency --all` (or a selection).

Each secret runs the same emergency sequence as alone, but the steps of all of them go
forward together: provider calls run concurrently in a thread pool, bounded per provider
by the HTTP layer's rate limits, and each publishing step is one batch, so every
environment's targets publish all the values and redeploy once per step, not once per
secret. The wall time is then set by the providers' documented limits, not by us.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from rotator import machine as m
from rotator.clock import as_utc
from rotator.engine import Engine
from rotator.store.models import Rotation
from rotator.work import Outcome, Unit, merge_outcome

DEFAULT_WORKERS = 16
MAX_WAIT = 900.0
ROUNDS = 40


def emergency_many(
    engine: Engine,
    units: Sequence[Unit],
    reason: str,
    *,
    workers: int = DEFAULT_WORKERS,
    on_progress: Callable[[str], None] | None = None,
) -> list[Outcome]:
    """Assess every unit, then drive all the emergencies together; return one outcome each."""
    from rotator.commands import start_emergency

    rt = engine.rt
    say = on_progress or rt.progress
    rt.http  # noqa: B018 - build the shared client before the worker threads start
    engine.notifications_held = []
    ids: dict[str, str] = {}
    for unit in units:
        ids[start_emergency(engine, unit, reason)] = unit.label
    say(f"assessed {len(ids)} emergencies; rotating")
    outcomes: dict[str, Outcome] = {}
    pending = list(ids)
    waited = 0.0
    finished = 0
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for _ in range(ROUNDS):
            if not pending:
                break
            ready, wait_until = _ready(engine, pending)
            if not ready:
                delay = max(0.0, (wait_until - rt.clock()).total_seconds()) if wait_until else 1.0
                if waited + delay > MAX_WAIT:
                    break
                say(f"waiting {delay:.0f} s for {len(pending)} retries")
                rt.sleep(delay)
                waited += delay
                continue
            results = list(pool.map(lambda rid: engine.advance(rid, publish_later=True), ready))
            batch = [work for _, work in results if work is not None]
            for outcome, _ in results:
                merge_outcome(outcomes, outcome)
            if batch:
                step = batch[0].step
                say(f"{step}: publishing {len(batch)} value(s), one redeploy per environment")
                for outcome in engine.publish_batch(batch):
                    merge_outcome(outcomes, outcome)
                for work in batch:
                    engine.release(work.rotation_id, work.fence)
            pending, done_now = _still_running(engine, pending)
            finished += done_now
            say(f"[{finished}/{len(ids)}] finished")
    held = engine.notifications_held or []
    engine.notifications_held = None
    if held:
        engine.notify(
            "emergency-finished",
            f"Mass emergency rotation ({len(ids)} secrets) by {rt.actor}. Reason: {reason}.\n"
            + "\n".join(held[:200])
            + ("\n..." if len(held) > 200 else ""),
        )
    engine.checkpoint()
    return [outcomes.get(label, Outcome(label, "waiting")) for label in ids.values()]


def _ready(engine: Engine, pending: list[str]) -> tuple[list[str], datetime | None]:
    """Split the rotations whose next step may run now from those waiting for a retry."""
    now = engine.rt.clock()
    ready: list[str] = []
    earliest: datetime | None = None
    with engine.rt.store.read() as s:
        for rid in pending:
            rotation = s.get(Rotation, rid)
            if rotation is None:
                continue
            at = as_utc(rotation.next_check_at) if rotation.next_check_at else None
            if at is None or at <= now:
                ready.append(rid)
            elif earliest is None or at < earliest:
                earliest = at
    return ready, earliest


def _still_running(engine: Engine, pending: list[str]) -> tuple[list[str], int]:
    stop = (*m.TERMINAL, *m.PERSON_STATES)
    left: list[str] = []
    done = 0
    with engine.rt.store.read() as s:
        for rid in pending:
            rotation = s.get(Rotation, rid)
            if rotation is None or rotation.state in stop:
                done += 1
            else:
                left.append(rid)
    return left, done
