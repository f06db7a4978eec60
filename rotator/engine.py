"""Drive rotations: ask the machine what is next, perform it, record intent and result.

The imperative shell around `rotator.machine`. Every side effect at a provider or a
target follows the same three beats: a short write transaction records the intent (with
the fencing counter checked), the call is made with no transaction open, and a second
short transaction records the result and the new state (fence checked again). A crash
between the beats leaves an intent without a result; the next run performs the step
again, and the providers' generate reconciles by name, so no second credential appears.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from rotator import machine as m
from rotator import repository as repo
from rotator.clock import FAKE_TIME_ENV, as_utc
from rotator.deployments import mark as mark_served
from rotator.deployments import served_by
from rotator.errors import (
    AuditWriteError,
    ClaimedElsewhereError,
    HealthCheckError,
    KeyMaterialError,
    NeedsPersonError,
    NotSupportedError,
    ProviderError,
    ProviderRefusedError,
    RefusedError,
    RetryLaterError,
    RollbackIncompleteError,
    RotatorError,
    StillServedError,
    TargetConfigError,
    TargetError,
    UnknownNameError,
)
from rotator.inventory import SecretSpec
from rotator.runtime import Runtime
from rotator.secret import Secret
from rotator.store.models import Approval, CredentialVersion, Rotation, SecretRecord, StepRecord

log = logging.getLogger("rotator.engine")

RETRY_BUDGET = 5
"""Attempts of one step before the rotation is failed, needs a person."""
LEASE = timedelta(minutes=15)
PUBLISHING_STEPS = ("stage", "promote")
PERSON_REMINDER = timedelta(days=1)

# Failures a retry cannot mend: a person must fix the inventory, a key or a credential.
NEEDS_PERSON = (
    ProviderRefusedError,
    NotSupportedError,
    TargetConfigError,
    KeyMaterialError,
    UnknownNameError,
    RollbackIncompleteError,
)


@dataclass
class Unit:
    """One rotatable unit: a secret in one scope (shared, or one environment)."""

    spec: SecretSpec
    scope_env: str

    @property
    def label(self) -> str:
        return (
            self.spec.name if self.scope_env == "shared" else f"{self.spec.name}[{self.scope_env}]"
        )

    @property
    def env_flag(self) -> str:
        return "" if self.scope_env == "shared" else f" --env {self.scope_env}"

    @property
    def stage_envs(self) -> tuple[str, ...]:
        if self.scope_env == "shared":
            return ("staging",)
        return () if self.scope_env == "production" else (self.scope_env,)

    @property
    def promote_envs(self) -> tuple[str, ...]:
        if self.scope_env == "shared":
            return ("production",)
        return ("production",) if self.scope_env == "production" else ()


@dataclass
class Outcome:
    """What happened to one unit in a command: for the summary and the timeline."""

    unit: str
    status: str  # done | waiting | person | failed | claimed
    steps: list[str] = field(default_factory=list)
    message: str = ""
    until: datetime | None = None


@dataclass
class Work:
    """A snapshot of one rotation for a side effect, taken inside the intent transaction."""

    rotation_id: str
    fence: int
    step: str
    unit: Unit
    kind: str
    facts: dict[str, Any]
    resumed: bool = True
    current: tuple[CredentialVersion, Secret] | None = None
    pending: tuple[CredentialVersion, Secret] | None = None
    previous: tuple[CredentialVersion, Secret] | None = None
    to_revoke: list[tuple[CredentialVersion, Secret | None]] = field(default_factory=list)
    served: dict[str, list[str]] = field(default_factory=dict)  # version → `env: target`s
    current_id: str | None = None
    state: str = ""


Apply = Callable[[Session, Rotation], None]


class Engine:
    """Run the rotation sequences over the inventory with one runtime."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.events_written = 0
        self._local = threading.local()
        rt.observers.append(self._record_call)
        self.notifications_held: list[str] | None = None
        self._signing_key_checked = False
        self._sink_pending: list[bytes] = []

    def _record_call(self, record: Any) -> None:
        """Keep each provider or target call until the transaction that records its step."""
        calls = getattr(self._local, "calls", None)
        if calls is None:
            calls = self._local.calls = []
        calls.append(record)

    def _take_calls(self) -> list[Any]:
        calls: list[Any] = getattr(self._local, "calls", None) or []
        self._local.calls = []
        return calls

    # ----------------------------------------------------------------- audit
    def audit(
        self,
        s: Session,
        event_type: str,
        *,
        unit: Unit | None = None,
        rotation_id: str | None = None,
        **details: Any,
    ) -> None:
        """Append one event in the caller's transaction; failing to write fails the action.

        The provider and target calls made since the last event are appended first, each
        as a `call` event (service, operation, HTTP status, outcome; never a value).
        """
        if not self._signing_key_checked:
            # The command ends by signing a checkpoint; a key that cannot sign must stop
            # it before its first event, not after the action is recorded.
            from rotator.keys import load_audit_key

            load_audit_key()
            self._signing_key_checked = True
        for call in self._take_calls():
            self._append(
                s,
                "call",
                unit,
                rotation_id,
                {
                    "service": call.provider,
                    "operation": call.operation,
                    "method": call.method,
                    "url": call.url,
                    "http_status": call.status,
                    "attempt": call.attempt,
                    "outcome": call.outcome,
                },
            )
        self._append(s, event_type, unit, rotation_id, details)

    def _append(
        self,
        s: Session,
        event_type: str,
        unit: Unit | None,
        rotation_id: str | None,
        details: dict[str, Any],
    ) -> None:
        from audit.trail import append
        from rotator import __version__

        try:
            event = append(
                s,
                event_type=event_type,
                actor=self.rt.actor,
                secret=unit.spec.name if unit else None,
                environment=(unit.scope_env if unit else None),
                rotation_id=rotation_id,
                details={
                    **{k: v for k, v in details.items() if v is not None},
                    **({"clock": "fake"} if os.environ.get(FAKE_TIME_ENV) else {}),
                },
                host=self.rt.host,
                tool_version=__version__,
            )
        except AuditWriteError as exc:
            raise _store_problem(exc) from exc
        except Exception as exc:  # fail closed: no event, no action
            raise AuditWriteError(
                f"the audit event {event_type} could not be written ({type(exc).__name__}); "
                "the action was not taken"
            ) from exc
        self.events_written += 1
        every = self.rt.inventory.audit.get("checkpoint_every", 1000)
        if isinstance(every, int) and every > 0 and event.seq % every == 0:
            self._checkpoint_within(s)

    def _audit_names(self) -> tuple[str, str]:
        cfg = self.rt.inventory.audit
        origin = str(cfg.get("origin", "rotator"))
        return origin, str(cfg.get("key_name", origin))

    def _checkpoint_within(self, s: Session) -> None:
        """Sign a checkpoint every N events, inside the transaction that wrote the Nth.

        Its copy goes to the external sink only once that transaction has committed, so
        the sink never holds a checkpoint the database does not.
        """
        from sqlalchemy import event as sa_event

        from audit.checkpoint import make_checkpoint
        from rotator.keys import load_audit_key

        origin, key_name = self._audit_names()
        cp = make_checkpoint(s, load_audit_key(), origin, key_name)
        if cp is None:
            return
        body = cp.body

        def committed(_session: Session) -> None:
            self._sink_pending.append(body)

        sa_event.listen(s, "after_commit", committed, once=True)

    def refuse(self, unit: Unit | None, command: str, exc: RefusedError) -> RefusedError:
        """Record a refused command in its own transaction, then hand back the error."""
        with self.rt.store.write() as s:
            self.audit(
                s,
                "command.refused",
                unit=unit,
                command=command,
                reason=exc.reason,
                allowed_from=exc.allowed_from.isoformat() if exc.allowed_from else None,
            )
        return exc

    def change_state(
        self,
        s: Session,
        rotation: Rotation,
        event: str,
        *,
        unit: Unit | None = None,
        resume_to: str | None = None,
        **details: Any,
    ) -> str:
        """Apply the machine's answer to `event`: the one place a rotation's state changes.

        The change is flushed at once, so the database's one-in-flight index speaks here
        (not at commit), and audited with the event that caused it.
        """
        before = rotation.state
        after = m.next_state(rotation.kind, before, event, resume_to=resume_to)
        now = self.rt.clock()
        if after == m.FAILED:
            # A row that ends in FAILED names where to resume; a failed step resumes itself.
            point = (m.resume_point(rotation.kind, before) if event == "done" else None) or before
            repo.set_facts(rotation, failed_state=point)
        rotation.state = after
        rotation.updated_at = now
        if after in m.TERMINAL:
            rotation.active = False
            rotation.finished_at = now
            rotation.next_check_at = None
        s.add(rotation)
        s.flush()
        self.audit(
            s,
            "rotation.state_changed",
            unit=unit,
            rotation_id=rotation.id,
            transition=event,
            state_from=before,
            state_to=after,
            **details,
        )
        return after

    def checkpoint(self) -> None:
        """Sign a checkpoint if this command wrote events (and copy it to the external sink)."""
        if not self.events_written:
            return
        from audit.checkpoint import append_to_sink, make_checkpoint
        from rotator.keys import load_audit_key

        cfg = self.rt.inventory.audit
        origin, key_name = self._audit_names()
        with self.rt.store.write() as s:
            cp = make_checkpoint(s, load_audit_key(), origin, key_name)
        self.events_written = 0
        bodies, self._sink_pending = self._sink_pending, []
        if cp is not None:
            bodies.append(cp.body)
        sink = cfg.get("external_sink")
        if bodies and isinstance(sink, str):
            from pathlib import Path

            from rotator.errors import AuditError
            from rotator.paths import state_dir

            path = Path(sink).expanduser()
            if not path.is_absolute():
                path = state_dir() / path
            try:
                path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                for body in bodies:
                    append_to_sink(path, body)
            except OSError as exc:
                raise AuditError(
                    f"the audit checkpoint is in the database but its copy could not be "
                    f"appended to the external sink {path} ({exc.strerror}); fix audit."
                    "external_sink in the inventory: without that copy a truncated trail "
                    "cannot be detected"
                ) from None

    # ----------------------------------------------------------------- units
    def units(self) -> list[Unit]:
        inv = self.rt.inventory
        return [Unit(spec, env) for spec in inv.secrets.values() for env in spec.scope_envs(inv)]

    def unit(self, name: str, env: str | None) -> Unit:
        spec = self.rt.inventory.secret(name)
        if spec.scope == "shared":
            if env not in (None, "shared"):
                raise UnknownNameError(
                    f"{name} is shared by staging and production; do not pass --env"
                )
            return Unit(spec, "shared")
        envs = spec.scope_envs(self.rt.inventory)
        if env is None:
            raise UnknownNameError(
                f"{name} has one value per environment; pass --env ({', '.join(envs)})"
            )
        if env not in envs:
            self.rt.inventory.environment(env)
            raise UnknownNameError(f"{name} is not configured for environment {env!r}")
        return Unit(spec, env)

    def record(self, s: Session, unit: Unit) -> SecretRecord:
        return repo.ensure_secret(s, unit.spec.name, unit.scope_env, unit.spec.provider)

    def _unit_of(self, s: Session, rotation: Rotation) -> Unit:
        record = s.get(SecretRecord, rotation.secret_id)
        assert record is not None
        return self.unit(record.name, None if record.scope_env == "shared" else record.scope_env)

    # ----------------------------------------------------------------- facts
    def facts(self, s: Session, rotation: Rotation, unit: Unit, now: datetime) -> m.Facts:
        from schedules import month_gate, parse_cycle_id

        inv = self.rt.inventory
        rf = repo.facts_of(rotation)
        gates = None
        if rotation.kind == m.QUARTERLY and rotation.cycle:
            cycle = parse_cycle_id(rotation.cycle)
            g = tuple(month_gate(cycle, i, inv.tz) for i in (1, 2, 3, 4))
            gates = (g[0], g[1], g[2], g[3])
        window, soak, monitoring = self._schedule()
        inside = window.contains(now)
        opens = None if inside else window.next_open(now)[0]
        caps = self.rt.provider(unit.spec.provider).capabilities
        approval_required = any(
            inv.environments[e].require_approval for e in unit.promote_envs if e in inv.environments
        )
        approved = (
            s.exec(
                select(Approval).where(
                    Approval.rotation_id == rotation.id, Approval.kind == "approval"
                )
            ).first()
            is not None
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
            staged_at=_when(rf.get("staged_at")),
            promoted_at=_when(rf.get("promoted_at")),
            soak=soak,
            monitoring=monitoring,
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

    def _schedule(self) -> tuple[Any, timedelta, timedelta]:
        """Return the production window, soak and monitoring, parsed once per engine."""
        cached = getattr(self, "_parsed_schedule", None)
        if cached is None:
            from schedules import parse_duration, parse_window

            inv = self.rt.inventory
            window = parse_window(
                list(inv.window.days),
                inv.window.start.strftime("%H:%M"),
                inv.window.end.strftime("%H:%M"),
                inv.time_zone,
            )
            cached = (window, parse_duration(inv.soak), parse_duration(inv.monitoring))
            self._parsed_schedule = cached
        return cached

    # ----------------------------------------------------------------- run
    def plan_cycles(self, now: datetime) -> int:
        """Open the quarterly cycle whose month 1 holds `now` for every unit lacking one."""
        from schedules import current_cycle_start, month_gate

        inv = self.rt.inventory
        cycle = current_cycle_start(now, inv.tz, inv.quarter_start_months)
        if now < month_gate(cycle, 1, inv.tz) or cycle.month_of(now.astimezone(inv.tz).date()) != 1:
            return 0
        from sqlalchemy.exc import IntegrityError, OperationalError

        for _ in range(3):
            try:
                return self._plan_missing(cycle, now)
            except IntegrityError:
                # Another runner planned some of the same cycles first; look again.
                continue
            except OperationalError as exc:
                if "deadlock" not in str(exc).lower():
                    raise
                continue  # the database chose this planner as the victim: look again
        return 0

    def _plan_missing(self, cycle: Any, now: datetime) -> int:
        units = self.units()
        created = 0
        with self.rt.store.read() as s:
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
        with self.rt.store.write() as s:
            # Take the audit trail's lock before inserting anything: two planners on
            # PostgreSQL would otherwise each hold a new rotation row the other waits on
            # while waiting for the trail's lock the other holds (a deadlock).
            from audit.trail import lock_head

            lock_head(s)
            for unit in missing:
                record = self.record(s, unit)
                exists = s.exec(
                    select(Rotation).where(
                        Rotation.secret_id == record.id, Rotation.cycle == cycle.id
                    )
                ).first()
                if exists is not None:
                    continue
                rotation = Rotation(
                    id=repo.new_id(),
                    secret_id=record.id or 0,
                    kind=m.QUARTERLY,
                    cycle=cycle.id,
                    state=m.PLANNED,
                    actor=self.rt.actor,
                    created_at=now,
                    updated_at=now,
                    next_check_at=now,
                )
                s.add(rotation)
                s.flush()
                self.audit(s, "cycle.planned", unit=unit, rotation_id=rotation.id, cycle=cycle.id)
                created += 1
        return created

    def run(self) -> list[Outcome]:
        """Do every step due now, each secret on its own; return what happened to each."""
        now = self.rt.clock()
        self.plan_cycles(now)
        with self.rt.store.read() as s:
            due = [(r.id, r.secret_id) for r in repo.due_rotations(s, now)]
        outcomes: dict[str, Outcome] = {}
        batch: list[Work] = []
        for rotation_id, _secret in due:
            outcome, waiting_publish = self.advance(rotation_id, publish_later=True)
            merge_outcome(outcomes, outcome)
            if waiting_publish is not None:
                batch.append(waiting_publish)
        if batch:
            published = self.publish_batch(batch)
            for outcome in published:
                merge_outcome(outcomes, outcome)
            # Only what published cleanly moves on now; a failure waits for its retry time.
            for work, outcome in zip(batch, published, strict=True):
                if outcome.status == "done":
                    again, _ = self.advance(work.rotation_id, publish_later=False)
                    merge_outcome(outcomes, again)
                self.release(work.rotation_id, work.fence)
        from rotator.notify import remind_pending

        remind_pending(self)
        self.checkpoint()
        return list(outcomes.values())

    def _claim(self, rotation_id: str) -> int:
        now = self.rt.clock()
        with self.rt.store.write() as s:
            rotation = repo.claim(s, rotation_id, self.rt.runner, now, now + LEASE)
            return rotation.fence

    def release(self, rotation_id: str, fence: int) -> None:
        with self.rt.store.write() as s:
            rotation = s.get(Rotation, rotation_id)
            if rotation is not None and rotation.fence == fence:
                rotation.claimed_by = None
                rotation.claimed_until = None
                s.add(rotation)

    def advance(
        self, rotation_id: str, *, publish_later: bool = False
    ) -> tuple[Outcome, Work | None]:
        """Run the steps of one rotation that are due now, up to a wait or a person."""
        try:
            fence = self._claim(rotation_id)
        except ClaimedElsewhereError as exc:
            # Name the secret, not only the rotation id, so the line says what was left.
            claimed = rotation_id
            try:
                with self.rt.store.read() as s:
                    found = s.get(Rotation, rotation_id)
                    if found is not None:
                        claimed = self._unit_of(s, found).label
            except RotatorError:
                pass  # a secret no longer in the inventory: the id must do
            self.rt.progress(f"skipped {claimed}: {exc}")
            return Outcome(claimed, "claimed", message=str(exc)), None
        label = rotation_id
        steps: list[str] = []
        keep_claim = False
        try:
            for _ in range(20):  # a rotation has fewer rows than this; a guard, not a limit
                now = self.rt.clock()
                with self.rt.store.write() as s:
                    rotation = repo.fenced(s, rotation_id, fence)
                    unit = self._unit_of(s, rotation)
                    label = unit.label
                    state = rotation.state
                    # A quarterly promotion is watched on every run until monitoring ends.
                    monitor_due = state == m.PROMOTED and rotation.kind == m.QUARTERLY
                    decision = m.next_decision(self.facts(s, rotation, unit, now))
                    if not isinstance(decision, m.Do) and not monitor_due:
                        self._settle(s, rotation, unit, decision, now)
                if monitor_due:
                    if not self._monitor(rotation_id, fence, unit):
                        steps.append("monitor")
                        continue  # the machine answers `rollback` next
                    if not isinstance(decision, m.Do):
                        with self.rt.store.write() as s:
                            rotation = repo.fenced(s, rotation_id, fence)
                            self._settle(s, rotation, unit, decision, now)
                        return _outcome(label, steps, decision, state), None
                if not isinstance(decision, m.Do):
                    if state == m.FAILED:
                        message = self._last_error(rotation_id) or "needs a person"
                        return Outcome(label, "failed", steps, message), None
                    return _outcome(label, steps, decision, state), None
                if decision.step in PUBLISHING_STEPS:
                    work = self.begin(rotation_id, fence, decision.step)
                    if publish_later:
                        # The claim is kept until the batch is published (see `run`).
                        keep_claim = True
                        return Outcome(label, "done" if steps else "waiting", steps), work
                    published = self.publish_batch([work])[0]
                    steps.append(decision.step)
                    if published.status != "done" or published.steps != [decision.step]:
                        published.steps = steps
                        return published, None
                    continue
                result = self._execute(rotation_id, fence, decision.step)
                steps.append(decision.step)
                self.rt.progress(f"{label}: {decision.step} {result}")
                if result != "ok":
                    message = self._last_error(rotation_id) or result
                    return Outcome(label, _status_of(result), steps, message), None
            return Outcome(label, "done", steps), None
        except ClaimedElsewhereError as exc:
            return Outcome(label, "claimed", steps, str(exc)), None
        except RotatorError as exc:
            return Outcome(label, "failed", steps, str(exc)), None
        except Exception as exc:
            import traceback

            # Frames only, never the message: a library's message may quote a value.
            frames = "".join(traceback.format_tb(exc.__traceback__))
            log.error("%s: unexpected %s\n%s", label, type(exc).__name__, frames)
            return Outcome(
                label,
                "failed",
                steps,
                f"unexpected {type(exc).__name__} (a bug: please report it with the log); "
                "the other secrets went on",
            ), None
        finally:
            if not keep_claim:
                self.release(rotation_id, fence)

    def _settle(
        self, s: Session, rotation: Rotation, unit: Unit, decision: m.Decision, now: datetime
    ) -> None:
        """Record when this rotation must next be looked at, so idle runs skip it."""
        if isinstance(decision, m.Wait):
            rotation.next_check_at = decision.until or now + PERSON_REMINDER
        elif isinstance(decision, m.AwaitPerson):
            rotation.next_check_at = now + PERSON_REMINDER
        elif isinstance(decision, m.Finished):
            rotation.active = False
            rotation.next_check_at = None
        if rotation.state == m.PROMOTED and rotation.kind == m.QUARTERLY:
            rotation.next_check_at = now  # production is watched on every run
        s.add(rotation)

    # ----------------------------------------------------------------- steps
    def begin(self, rotation_id: str, fence: int, step: str, *, intent: bool = True) -> Work:
        """Record the intent of `step` and snapshot what the side effect needs.

        With `intent=False` only the snapshot is taken (a check before acting, such as
        `rotate confirm` asking the provider): nothing but the decryptions is recorded.
        """
        with self.rt.store.write() as s:
            found = repo.fenced(s, rotation_id, fence) if intent else s.get(Rotation, rotation_id)
            if found is None:
                raise ClaimedElsewhereError(f"rotation {rotation_id} is gone")
            rotation = found
            unit = self._unit_of(s, rotation)
            record = s.get(SecretRecord, rotation.secret_id)
            assert record is not None
            work = Work(rotation_id, fence, step, unit, rotation.kind, repo.facts_of(rotation))
            work.state = rotation.state
            need = _values_needed(step, rotation.kind)
            for state in (repo.CURRENT, repo.PENDING, repo.PREVIOUS):
                version = repo.version_in(s, record.id or 0, state)
                if version is None:
                    continue
                value = None
                if state in need and version.ciphertext is not None:
                    value = self._reveal(s, unit, record, version, rotation_id, step)
                if value is not None:
                    setattr(work, state, (version, value))
            if step in ("revoke", "generate"):
                work.to_revoke = self._revocation_list(s, unit, record, rotation, work, step)
            current = repo.version_in(s, record.id or 0, repo.CURRENT)
            work.current_id = current.id if current else None
            targets = self.deploy_targets(unit)
            for version in repo.versions(s, record.id or 0, *repo.LIVE):
                work.served[version.id] = served_by(
                    s, record.id or 0, targets, version.id, work.current_id
                )
            if not intent:
                return work
            if step in PUBLISHING_STEPS and work.pending is not None:
                # Before the call: from now on these targets may serve the new value.
                envs = unit.stage_envs if step == "stage" else unit.promote_envs
                mark_served(
                    s,
                    record.id or 0,
                    {e: targets[e] for e in envs if e in targets},
                    work.pending[0].id,
                    confirmed=False,
                    current=work.current_id,
                    at=self.rt.clock(),
                )
            earlier = s.exec(
                select(StepRecord.id).where(
                    StepRecord.rotation_id == rotation_id, StepRecord.step == step
                )
            ).first()
            work.resumed = earlier is not None
            s.add(
                StepRecord(
                    rotation_id=rotation_id,
                    step=step,
                    status="intent",
                    attempt=rotation.attempts + 1,
                    actor=self.rt.actor,
                    started_at=self.rt.clock(),
                )
            )
            self.audit(s, "step.started", unit=unit, rotation_id=rotation_id, step=step)
        return work

    def deploy_targets(self, unit: Unit) -> dict[str, list[str]]:
        """Name the targets of every environment `unit` is published to (cached per run)."""
        cache: dict[str, list[str]] = self.__dict__.setdefault("_target_names", {})
        out: dict[str, list[str]] = {}
        for env in (*unit.stage_envs, *unit.promote_envs):
            if env not in cache:
                cache[env] = [t.describe() for t in self.rt.targets(env)]
            out[env] = cache[env]
        return out

    def _reveal(
        self,
        s: Session,
        unit: Unit,
        record: SecretRecord,
        version: CredentialVersion,
        rotation_id: str | None,
        why: str,
    ) -> Secret:
        value = repo.reveal(self.rt.master_key, record, version)
        self.audit(
            s,
            "value.decrypted",
            unit=unit,
            rotation_id=rotation_id,
            version=version.id,
            state=version.state,
            why=why,
        )
        return value

    def _revocation_list(
        self,
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
                value = self._reveal(s, unit, record, version, rotation.id, f"{step}: revoke")
            out.append((version, value))
        return out

    def _execute(self, rotation_id: str, fence: int, step: str) -> str:
        work = self.begin(rotation_id, fence, step)
        try:
            apply = STEP_IMPLEMENTATIONS[step](self, work)
        except Exception as exc:
            return self.fail_or_wait(work, exc)
        result = self.finish(work, apply)
        if step == "rollback":
            self._tell_rolled_back(work, result)
        return result

    def _tell_rolled_back(self, work: Work, result: str) -> None:
        reason = work.facts.get("rollback_reason") or "rollback"
        if work.kind == m.EMERGENCY and result == "failed":
            self.notify(
                "emergency-failed",
                f"URGENT: {_emergency_rolled_back(work.unit, str(reason), work.facts)}",
                unit=work.unit,
            )
            return
        self.notify(
            "rollback",
            f"{work.unit.label} was rolled back to its previous value: {reason}",
            unit=work.unit,
        )

    def finish(self, work: Work, apply: Apply, status: str = "done") -> str:
        with self.rt.store.write() as s:
            rotation = repo.fenced(s, work.rotation_id, work.fence)
            before = rotation.state
            apply(s, rotation)
            rotation.attempts = 0
            rotation.last_error = None
            rotation.updated_at = self.rt.clock()
            rotation.next_check_at = self.rt.clock()
            s.add(rotation)
            self._step_result(s, work, status, {})
            self.audit(
                s,
                "step.done",
                unit=work.unit,
                rotation_id=work.rotation_id,
                step=work.step,
                state_from=before,
                state_to=rotation.state,
            )
            if rotation.state in m.TERMINAL:
                rotation.next_check_at = None
            elif rotation.state in m.PERSON_STATES:
                rotation.next_check_at = self.rt.clock() + PERSON_REMINDER
            if rotation.state in (m.REVOKED, m.FAILED, *m.TERMINAL):
                # A credential was retired: the next cycle's generate may open now.
                for other in repo.active_rotations(s, rotation.secret_id):
                    if other.id != rotation.id:
                        other.next_check_at = self.rt.clock()
                        s.add(other)
        if rotation.state == m.FAILED:
            return "failed"
        return "person" if rotation.state in m.PERSON_STATES else "ok"

    def _step_result(self, s: Session, work: Work, status: str, detail: dict[str, Any]) -> None:
        record = s.exec(
            select(StepRecord)
            .where(StepRecord.rotation_id == work.rotation_id, StepRecord.step == work.step)
            .where(StepRecord.status == "intent")
            .order_by(col(StepRecord.id).desc())
        ).first()
        if record is not None:
            record.status = status
            record.finished_at = self.rt.clock()
            record.detail = json.dumps(detail, sort_keys=True)
            s.add(record)

    def fail_or_wait(self, work: Work, exc: Exception) -> str:
        """Turn a step's exception into its durable consequence: wait, person, retry, failed."""
        if isinstance(exc, NeedsPersonError):
            with self.rt.store.write() as s:
                rotation = repo.fenced(s, work.rotation_id, work.fence)
                repo.set_facts(rotation, instruction=exc.instruction)
                self.change_state(s, rotation, "await-person", unit=work.unit, step=work.step)
                rotation.next_check_at = self.rt.clock() + PERSON_REMINDER
                s.add(rotation)
                self._step_result(s, work, "awaiting-person", {})
                self.audit(
                    s,
                    "step.awaiting_person",
                    unit=work.unit,
                    rotation_id=work.rotation_id,
                    step=work.step,
                    instruction=exc.instruction,
                )
            self.notify_person(work.unit, work.rotation_id, work.step, exc.instruction)
            return "person"
        if isinstance(exc, RotatorError):
            message = str(exc)
        else:
            import traceback

            # A bug counts against the retry budget like any failure, so it cannot loop.
            frames = "".join(traceback.format_tb(exc.__traceback__))
            log.error("%s: unexpected %s\n%s", work.unit.label, type(exc).__name__, frames)
            message = f"unexpected {type(exc).__name__} during {work.step} (a bug: see the log)"
        needs_person = isinstance(exc, NEEDS_PERSON)
        status = getattr(exc, "status", None)
        with self.rt.store.write() as s:
            rotation = repo.fenced(s, work.rotation_id, work.fence)
            rotation.attempts += 1
            rotation.last_error = message
            now = self.rt.clock()
            if needs_person or rotation.attempts >= RETRY_BUDGET:
                repo.set_facts(rotation, failed_step=work.step)
                self.change_state(s, rotation, "fail", unit=work.unit, step=work.step)
                rotation.next_check_at = now + PERSON_REMINDER
                outcome = "failed"
            else:
                delay = getattr(exc, "retry_after", None)
                backoff = timedelta(minutes=5) * (2 ** (rotation.attempts - 1))
                rotation.next_check_at = now + (
                    timedelta(seconds=delay) if delay else min(backoff, timedelta(hours=6))
                )
                outcome = "retry"
            s.add(rotation)
            self._step_result(s, work, "failed", {"error": message})
            self.audit(
                s,
                "step.failed",
                unit=work.unit,
                rotation_id=work.rotation_id,
                step=work.step,
                error=message,
                http_status=status,
                attempt=rotation.attempts,
                outcome=outcome,
            )
        if outcome == "failed":
            self.notify(
                "step-failed",
                f"{work.unit.label}: {work.step} failed and needs a person: {message}",
                unit=work.unit,
            )
        return outcome

    def _last_error(self, rotation_id: str) -> str:
        with self.rt.store.read() as s:
            rotation = s.get(Rotation, rotation_id)
            if rotation is None or not rotation.last_error:
                return ""
            when = rotation.next_check_at
            if rotation.state == m.FAILED:
                return f"needs a person: {rotation.last_error}"
            retry = f"; retrying after {as_utc(when).isoformat()}" if when else ""
            return f"{rotation.last_error}{retry}"

    # ----------------------------------------------------------------- side effects
    def ctx(self, work: Work) -> Any:
        current = work.current
        return self.rt.provider_context(
            work.unit.spec,
            work.unit.scope_env,
            work.rotation_id,
            current=current[1] if current else None,
            current_ref=current[0].provider_ref if current else None,
            resumed=work.resumed,
        )

    def do_generate(self, work: Work) -> Apply:
        provider = self.rt.provider(work.unit.spec.provider)
        # Retire compromised credentials first (at most two live), but never one a target
        # still serves: those environments go back to the current credential first.
        self._unserve(work, [v.id for v, _ in work.to_revoke])
        retired = self._revoke_all(work, work.to_revoke, allow_person=False)
        generated = provider.generate(self.ctx(work))
        fingerprint = self.rt.fingerprint(generated.value)
        known = self.known_fingerprint(work.unit, fingerprint)
        if known:
            raise ProviderRefusedError(
                f"{work.unit.label}: the provider returned a value that is {known}; "
                "a used value never becomes current again",
                provider=provider.name,
                operation="generate",
            )

        def apply(s: Session, rotation: Rotation) -> None:
            self.mark_revoked(s, work, retired)
            self.store_pending(
                s,
                work,
                rotation,
                generated.value,
                generated.ref,
                dict(generated.notes),
                fingerprint,
            )
            self.change_state(s, rotation, "done", unit=work.unit)

        return apply

    def known_fingerprint(self, unit: Unit, fingerprint: str) -> str | None:
        """Say what an already known value was, or None for a value never seen before.

        Every version of the secret counts (current, previous, pending, revoked, any
        compromised one), and for a secret with one value per environment, every other
        environment's values too.
        """
        with self.rt.store.read() as s:
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

    def _unserve(self, work: Work, version_ids: list[str]) -> None:
        """Put the current value back wherever a credential about to be retired is served."""
        served = sorted({t.split(":", 1)[0] for v in version_ids for t in work.served.get(v, [])})
        if not served or work.current is None:
            return
        for env in _production_first(served, None):
            self.rt.progress(
                f"{work.unit.label}: {env} serves a credential about to be retired; "
                "putting the current one back first"
            )
            self._republish(work, env, work.current)
            self._require_healthy(env)
        for vid in version_ids:
            work.served[vid] = []

    def _republish(self, work: Work, env: str, version: tuple[CredentialVersion, Secret]) -> None:
        """Publish one stored version to one environment, recorded before and after."""
        targets = {env: self.deploy_targets(work.unit).get(env, [])}
        with self.rt.store.write() as s:
            repo.fenced(s, work.rotation_id, work.fence)
            mark_served(
                s,
                version[0].secret_id,
                targets,
                version[0].id,
                confirmed=False,
                current=work.current_id,
                at=self.rt.clock(),
            )
        self._publish_env(env, {work.unit.spec.variable: version[1]})
        with self.rt.store.write() as s:
            repo.fenced(s, work.rotation_id, work.fence)
            mark_served(
                s,
                version[0].secret_id,
                targets,
                version[0].id,
                confirmed=True,
                current=work.current_id,
                at=self.rt.clock(),
            )
            self.audit(
                s,
                "deployment.restored",
                unit=work.unit,
                rotation_id=work.rotation_id,
                environment_restored=env,
                version=version[0].id,
                targets=targets[env],
            )

    def store_pending(
        self,
        s: Session,
        work: Work,
        rotation: Rotation,
        value: Secret,
        ref: str,
        notes: dict[str, str],
        fingerprint: str,
    ) -> None:
        record = s.get(SecretRecord, rotation.secret_id)
        assert record is not None
        version = repo.add_version(
            s,
            self.rt.master_key,
            record,
            value,
            state=repo.PENDING,
            ref=ref,
            fingerprint=fingerprint,
            rotation_id=rotation.id,
            notes=notes,
            at=self.rt.clock(),
        )
        self.audit(
            s,
            "credential.created",
            unit=work.unit,
            rotation_id=rotation.id,
            version=version.id,
            fingerprint=fingerprint,
            provider_ref=ref,
            notes=notes or None,
        )

    def do_validate(self, work: Work) -> Apply:
        assert work.pending is not None, "validate needs the pending value"
        self.rt.provider(work.unit.spec.provider).validate(self.ctx(work), work.pending[1])
        for env in work.unit.stage_envs:
            self._require_healthy(env)

        def apply(s: Session, rotation: Rotation) -> None:
            self.change_state(s, rotation, "done", unit=work.unit)

        return apply

    def do_monitor(self, work: Work) -> Apply:
        # The production check of this run already passed (see `_monitor`); the
        # monitoring period is over, so the rotation may move on to revocation.
        def apply(s: Session, rotation: Rotation) -> None:
            self.change_state(s, rotation, "done", unit=work.unit)

        return apply

    def do_revoke(self, work: Work) -> Apply:
        revoked = self._revoke_all(work, work.to_revoke, allow_person=True)

        def apply(s: Session, rotation: Rotation) -> None:
            self.mark_revoked(s, work, revoked)
            self.change_state(s, rotation, "done", unit=work.unit)

        return apply

    def do_notify(self, work: Work) -> Apply:
        reason = work.facts.get("reason", "")
        self.notify(
            "emergency-finished",
            f"Emergency rotation of {work.unit.label} is complete. Reason: {reason}. "
            "The compromised credentials are revoked and the new value is deployed to "
            "staging and production. Nothing else is needed unless you hold a copy of the "
            "old value somewhere outside Cloudflare: replace it.",
            unit=work.unit,
        )

        def apply(s: Session, rotation: Rotation) -> None:
            self.change_state(s, rotation, "done", unit=work.unit)

        return apply

    def _revoke_all(
        self,
        work: Work,
        items: list[tuple[CredentialVersion, Secret | None]],
        *,
        allow_person: bool,
    ) -> list[str]:
        """Revoke each credential and check it is refused; return the ids now revoked."""
        provider = self.rt.provider(work.unit.spec.provider)
        ctx = self.ctx(work)
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

    def mark_revoked(self, s: Session, work: Work, ids: list[str]) -> None:
        for vid in ids:
            version = s.get(CredentialVersion, vid)
            if version is None or version.state == repo.REVOKED:
                continue
            was = version.state
            version.state = repo.REVOKED
            version.revoked_at = self.rt.clock()
            version.ciphertext = None  # the value is destroyed with the credential
            s.add(version)
            self.audit(
                s,
                "credential.revoked",
                unit=work.unit,
                rotation_id=work.rotation_id,
                version=vid,
                was=was,
                fingerprint=version.fingerprint,
                value_destroyed=True,
            )

    def _require_healthy(self, env: str) -> None:
        from rotator.health import HealthCheck, require_healthy

        environment = self.rt.inventory.environment(env)
        if environment.health_path is None:
            return
        failures, span = self._health_confirmation()
        check = HealthCheck(
            environment.url,
            environment.health_path,
            environment.expected_status,
            attempts=failures,
            delay=span.total_seconds() / max(1, failures - 1),
        )
        require_healthy(check, self.rt.http, environment=env, sleep=self.rt.sleep)

    def _health_confirmation(self) -> tuple[int, timedelta]:
        """How many failed checks, over how long, make an environment unhealthy.

        One failed request is not a verdict (a flaky endpoint, a 429): a rollback starts
        only after `health_failures` consecutive failures spanning `health_span`.
        """
        from schedules import parse_duration

        inv = self.rt.inventory
        return inv.health_failures, parse_duration(inv.health_span)

    def healthy(self, env: str) -> tuple[bool, str]:
        try:
            self._require_healthy(env)
        except HealthCheckError as exc:
            return False, str(exc)
        return True, ""

    # ----------------------------------------------------------------- publishing
    def publish_batch(self, batch: list[Work]) -> list[Outcome]:
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
        for env, values in by_env.items():
            try:
                self._publish_env(env, values)
            except Exception as exc:
                env_errors[env] = exc
        outcomes = []
        for work, envs in plan:
            try:
                for env in envs:
                    if env in env_errors:
                        raise env_errors[env]
                apply, failure = self._after_publish(work, envs)
            except Exception as exc:
                result = self.fail_or_wait(work, exc)
                outcomes.append(
                    Outcome(
                        work.unit.label,
                        _status_of(result),
                        [work.step],
                        self._last_error(work.rotation_id),
                    )
                )
                continue
            self.finish(work, apply)
            if failure:
                self.rt.progress(f"{work.unit.label}: {work.step} done, but {failure}")
                outcomes.append(Outcome(work.unit.label, "done", [work.step], failure))
                continue
            self.rt.progress(f"{work.unit.label}: {work.step} ok")
            outcomes.append(Outcome(work.unit.label, "done", [work.step]))
        return outcomes

    def _publish_env(self, env: str, values: dict[str, Secret]) -> None:
        targets = self.rt.targets(env)
        for target in targets:
            target.publish(values)
        for target in targets:
            target.finish()

    def _after_publish(self, work: Work, envs: tuple[str, ...]) -> tuple[Apply, str]:
        """Check health where the value went; for an emergency stage, validate too.

        A failed check after promote is not a failed step: production serves the new
        value, so the promotion is recorded, and the machine answers with a rollback.
        """
        provider = self.rt.provider(work.unit.spec.provider)
        assert work.pending is not None
        pending_id = work.pending[0].id
        targets = self.deploy_targets(work.unit)
        published = {e: targets.get(e, []) for e in envs}
        if work.step == "stage":
            for env in envs:
                self._require_healthy(env)
            if work.kind == m.EMERGENCY:
                provider.validate(self.ctx(work), work.pending[1])
            staged_at = self.rt.clock().isoformat()

            def staged(s: Session, rotation: Rotation) -> None:
                mark_served(
                    s,
                    rotation.secret_id,
                    published,
                    pending_id,
                    confirmed=True,
                    current=work.current_id,
                    at=self.rt.clock(),
                )
                repo.set_facts(rotation, staged_at=staged_at)
                self.change_state(s, rotation, "done", unit=work.unit)

            return staged, ""
        failed_env, detail = None, ""
        for env in envs:
            ok, detail = self.healthy(env)
            if not ok:
                failed_env = env
                break
        promoted_at = self.rt.clock()

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
                old.state = repo.PREVIOUS
                s.add(old)
            if new is not None:
                new.state = repo.CURRENT
                new.promoted_at = promoted_at
                s.add(new)
            repo.set_facts(rotation, promoted_at=promoted_at.isoformat())
            self.change_state(s, rotation, "done", unit=work.unit)
            self.audit(
                s,
                "credential.promoted",
                unit=work.unit,
                rotation_id=rotation.id,
                version=new.id if new else None,
                previous=old.id if old else None,
            )
            if failed_env is not None:
                self._health_failed(s, rotation, work.unit, failed_env, detail)

        return promoted, (f"{failed_env} is unhealthy: rolling back" if failed_env else "")

    def _health_failed(
        self, s: Session, rotation: Rotation, unit: Unit, env: str, detail: str
    ) -> None:
        """Record a confirmed failure after promotion; the machine answers `rollback`."""
        before = repo.facts_of(rotation).get("health_before", {})
        earlier = before.get(env) if isinstance(before, dict) else None
        repo.set_facts(rotation, rollback_reason=detail, failed_env=env)
        self.change_state(
            s,
            rotation,
            "health-failed",
            unit=unit,
            environment_failed=env,
            detail=detail,
            failing_before=earlier if earlier and earlier != "ok" else None,
        )

    # ----------------------------------------------------------------- monitoring, rollback
    def _monitor(self, rotation_id: str, fence: int, unit: Unit) -> bool:
        """Check production during monitoring; on a confirmed failure, start the rollback."""
        for env in unit.promote_envs:
            ok, detail = self.healthy(env)
            with self.rt.store.write() as s:
                rotation = repo.fenced(s, rotation_id, fence)
                self.audit(
                    s,
                    "health.checked",
                    unit=unit,
                    rotation_id=rotation_id,
                    environment_checked=env,
                    healthy=ok,
                    detail=detail or None,
                )
                if not ok:
                    self._health_failed(s, rotation, unit, env, f"monitoring: {detail}")
            if not ok:
                return False
        return True

    def do_rollback(self, work: Work) -> Apply:
        """The rollback sequence (DESIGN §3): restore everywhere, check, then discard.

        The previous value goes back to every environment whose targets may serve the new
        one (production first when production failed), each environment must pass its
        health check on it, and only then is the new credential discarded, after checking
        that no target serves it. An emergency keeps its new credential (it is not
        compromised) for `rotate resume`, and ends needing a person.
        """
        unit = work.unit
        own = [
            v for v in (work.current, work.pending) if v and v[0].rotation_id == work.rotation_id
        ]
        new = own[0] if own else None
        promoted = new is not None and work.current is not None and new is work.current
        old = work.previous if promoted else work.current
        if new is None or old is None:
            raise RollbackIncompleteError(
                f"{unit.label}: nothing to roll back to (no "
                f"{'previous' if promoted else 'current'} value is stored)"
            )
        failed_env = work.facts.get("failed_env")
        reason = str(work.facts.get("rollback_reason") or "rollback")
        envs = set(unit.stage_envs) | (set(unit.promote_envs) if promoted else set())
        envs |= {t.split(":", 1)[0] for t in work.served.get(new[0].id, [])}
        order = _production_first(sorted(envs), failed_env)
        for env in order:
            self.rt.progress(f"{unit.label}: rollback: restoring the previous value in {env}")
            self._republish(work, env, old)
        before = work.facts.get("health_before")
        for env in order:
            ok, detail = self.healthy(env)
            if not ok and isinstance(before, dict) and before.get(env, "ok") != "ok":
                # Failing before the emergency began, on the very value restored now: the
                # restore is complete; what fails is not this rotation's doing.
                self.rt.progress(f"{unit.label}: {env} still fails, as it did before: {detail}")
                continue
            if not ok:
                raise RollbackIncompleteError(
                    f"{unit.label}: the previous value is back in {', '.join(order)}, but "
                    f"{detail}; the new credential is kept until every environment passes "
                    f"again: fix the environment, then run `rotate resume "
                    f"{unit.spec.name}{unit.env_flag}`"
                )
        work.served[new[0].id] = []
        keep_new = work.kind == m.EMERGENCY and work.state == m.ROLLING_BACK
        revoked: list[str] = []
        person = None
        if not keep_new:
            # The restored value is the one in use again: providers that sign in with the
            # current credential (Resend) must use it, not the one being discarded.
            work.current = old
            try:
                revoked = self._revoke_all(work, [new], allow_person=True)
            except NeedsPersonError:
                person = _discard_instruction(unit, new[0])

        def apply(s: Session, rotation: Rotation) -> None:
            o, n = s.get(CredentialVersion, old[0].id), s.get(CredentialVersion, new[0].id)
            if promoted and o is not None and n is not None:
                o.state = repo.CURRENT
                n.state = repo.PENDING if keep_new else repo.PREVIOUS
                s.add_all([o, n])
            self.mark_revoked(s, work, revoked)
            self.audit(
                s,
                "rotation.rolled_back",
                unit=unit,
                rotation_id=rotation.id,
                reason=reason,
                restored=order,
                restored_version=old[0].id,
                new_version=new[0].id,
                new_kept=keep_new,
            )
            if person is not None:
                repo.set_facts(rotation, instruction=person, revoke=[new[0].id])
                self.change_state(s, rotation, "await-person", unit=unit)
                return
            if keep_new:
                text = _emergency_rolled_back(unit, reason, work.facts)
                repo.set_facts(rotation, instruction=text, serves_compromised=True)
                rotation.last_error = text
            self.change_state(s, rotation, "done", unit=unit)

        return apply

    # ----------------------------------------------------------------- notifications
    def notify(self, event: str, text: str, *, unit: Unit | None = None) -> None:
        held = self.notifications_held
        if held is not None and event in ("emergency-started", "emergency-finished"):
            # A mass emergency tells people once, with the whole list, not once per secret.
            if event == "emergency-finished":
                held.append(f"- {unit.label if unit else '?'}: rotated, old credentials revoked")
            return
        from rotator.notify import send

        send(self, event, text, unit=unit)

    def notify_person(self, unit: Unit, rotation_id: str, step: str, instruction: str) -> None:
        self.notify(
            "person-needed",
            f"{unit.label}: a person is needed for {step}.\n{instruction}",
            unit=unit,
        )

    # ----------------------------------------------------------------- helpers for commands
    @contextmanager
    def claimed(self, rotation_id: str) -> Iterator[int]:
        fence = self._claim(rotation_id)
        try:
            yield fence
        finally:
            self.release(rotation_id, fence)

    def find_rotation(self, unit: Unit, states: tuple[str, ...] | None = None) -> Rotation | None:
        with self.rt.store.read() as s:
            record = repo.find_secret(s, unit.spec.name, unit.scope_env)
            if record is None:
                return None
            for rotation in repo.active_rotations(s, record.id or 0):
                if states is None or rotation.state in states:
                    return rotation
        return None


STEP_IMPLEMENTATIONS: dict[str, Callable[[Engine, Work], Apply]] = {
    "rollback": Engine.do_rollback,
    "generate": Engine.do_generate,
    "validate": Engine.do_validate,
    "monitor": Engine.do_monitor,
    "revoke": Engine.do_revoke,
    "notify": Engine.do_notify,
}


def _store_problem(exc: AuditWriteError) -> RotatorError:
    """Name a database that cannot be written at all (read-only) as the store's problem.

    SQLite begins a write transaction on a read-only file and fails at the first write,
    which is always an audit event: the person must hear "read-only", not "audit".
    """
    cause = exc.__cause__
    reason = str(getattr(cause, "orig", cause) or "").strip().splitlines()
    text = reason[0] if reason else ""
    if "readonly" in text.replace("-", "").replace(" ", "").lower():
        from rotator.errors import StoreError

        return StoreError(
            f"the database is read-only ({text}); nothing was changed: run rotate as the "
            "user that owns the state directory, or use a writable copy"
        )
    return exc


def _values_needed(step: str, kind: str) -> tuple[str, ...]:
    """Name which stored values a step must decrypt: no more, since each is audited."""
    return {
        "generate": (repo.CURRENT,),
        "stage": (repo.CURRENT, repo.PENDING),
        "validate": (repo.CURRENT, repo.PENDING),
        "promote": (repo.CURRENT, repo.PENDING),
        "revoke": (repo.CURRENT,),
        "rollback": (repo.CURRENT, repo.PENDING, repo.PREVIOUS),
        "notify": (),
    }.get(step, ())


def _production_first(envs: list[str], failed: object) -> list[str]:
    """Order environments for a restore: the failed one, then production, then the rest."""
    return sorted(envs, key=lambda e: (e != failed, e != "production", e))


def _discard_instruction(unit: Unit, version: CredentialVersion) -> str:
    created = as_utc(version.created_at).strftime("%Y-%m-%d %H:%M UTC")
    ref = f", reference {version.provider_ref}" if version.provider_ref else ""
    return (
        f"{unit.label} was rolled back: every environment serves the previous credential "
        "again. Delete the NEW credential at the provider, the one this rotation created "
        f"on {created} (version {version.id}, fingerprint {version.fingerprint}{ref}). "
        "Keep the current one: it is in use.\n"
        f"Then run: rotate confirm {unit.spec.name}{unit.env_flag} --step revoke "
        "(the tool checks that the provider now refuses the new credential)"
    )


def _emergency_rolled_back(unit: Unit, reason: str, facts: dict[str, Any]) -> str:
    before = facts.get("health_before", {})
    failing = {
        env: detail
        for env, detail in (before.items() if isinstance(before, dict) else ())
        if detail != "ok"
    }
    already = ""
    if failing:
        already = (
            " It was already failing before the emergency started ("
            + "; ".join(f"{env}: {detail}" for env, detail in sorted(failing.items()))
            + ")."
        )
    return (
        f"EMERGENCY NOT FINISHED: production serves the COMPROMISED credential of "
        f"{unit.label} again. The new credential failed in production ({reason}) and was "
        f"rolled back; it is kept, not revoked.{already} Fix what fails, then run "
        f"`rotate resume {unit.spec.name}{unit.env_flag}` (or `rotate emergency "
        f"{unit.spec.name}{unit.env_flag}` again): it stages and promotes the new "
        "credential again, then revokes the compromised ones."
    )


def _when(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    return as_utc(datetime.fromisoformat(value))


def _status_of(result: str) -> str:
    return {"ok": "done", "person": "person", "failed": "failed", "retry": "retrying"}.get(
        result, "waiting"
    )


def _outcome(label: str, steps: list[str], decision: m.Decision, state: str = "") -> Outcome:
    if isinstance(decision, m.AwaitPerson):
        return Outcome(label, "person", steps, decision.action)
    if isinstance(decision, m.Wait):
        return Outcome(
            label, "done" if steps else "waiting", steps, decision.reason, decision.until
        )
    if isinstance(decision, m.Finished):
        if decision.state == m.ROLLED_BACK and "rollback" in steps and state != m.ABORTING:
            # The rotation did not happen: the previous value serves again. Not a success.
            return Outcome(label, "failed", steps, "rolled back; the previous value serves again")
        return Outcome(label, "done" if steps else "waiting", steps, decision.state)
    return Outcome(label, "done", steps)


_RANK = {"failed": 5, "retrying": 4, "person": 3, "claimed": 2, "done": 1, "waiting": 0}


def merge_outcome(outcomes: dict[str, Outcome], new: Outcome) -> None:
    old = outcomes.get(new.unit)
    if old is None:
        outcomes[new.unit] = new
        return
    old.steps.extend(new.steps)
    if _RANK[new.status] >= _RANK[old.status]:
        old.status = new.status
        old.message = new.message or old.message
        old.until = new.until


__all__ = ["Engine", "Outcome", "ProviderError", "TargetError", "Unit"]
