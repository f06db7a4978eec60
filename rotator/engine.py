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
    RotatorError,
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

        Its copy goes to the external sink with the command's closing checkpoint, which
        copies every checkpoint the sink lacks, so the sink never holds one the database
        does not. An entry the tool did not write is left for that closing checkpoint to
        report: failing here would roll back the action being recorded.
        """
        from audit.checkpoint import make_checkpoint
        from audit.mac import ForgedEntryError
        from rotator.keys import load_audit_key

        origin, key_name = self._audit_names()
        try:
            # Raised before anything is written, so the transaction stays usable.
            make_checkpoint(s, load_audit_key(), origin, key_name)
        except ForgedEntryError:
            return

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

    def checkpoint(self) -> None:
        """Sign a checkpoint if this command wrote events, and bring the external sink up to date.

        Every checkpoint the sink lacks is copied, so a copy an earlier command missed (a
        full disk, a missing mount) lands with this one. An entry the tool did not write
        stops the signing: the channels are told and `ForgedEntryError` (exit 1) names it.
        """
        if not self.events_written:
            return
        import contextlib

        from audit.checkpoint import make_checkpoint, sync_sink
        from audit.mac import ForgedEntryError
        from audit.verify import CheckpointError
        from rotator.keys import load_audit_key

        cfg = self.rt.inventory.audit
        origin, key_name = self._audit_names()
        try:
            with self.rt.store.write() as s:
                make_checkpoint(s, load_audit_key(), origin, key_name)
        except ForgedEntryError as exc:
            self.events_written = 0
            # Best effort: the error raised below reaches the operator even if no channel does.
            with contextlib.suppress(Exception):
                self.notify("audit-forged-entry", f"No audit checkpoint was signed: {exc}")
            raise
        self.events_written = 0
        self._sink_pending = []
        sink = cfg.get("external_sink")
        if isinstance(sink, str):
            from pathlib import Path

            from rotator.errors import AuditError
            from rotator.paths import state_dir

            path = Path(sink).expanduser()
            if not path.is_absolute():
                path = state_dir() / path
            try:
                with self.rt.store.read() as s:
                    sync_sink(s, path)
            except (OSError, CheckpointError) as exc:
                why = exc.strerror if isinstance(exc, OSError) else str(exc)
                raise AuditError(
                    f"the audit checkpoint is in the database but its copy could not be "
                    f"appended to the external sink {path} ({why}); fix audit."
                    "external_sink in the inventory: without that copy a truncated trail "
                    "cannot be detected. The next command copies every checkpoint missed"
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
            outcome, waiting_publish = self._advance(rotation_id, publish_later=True)
            _merge(outcomes, outcome)
            if waiting_publish is not None:
                batch.append(waiting_publish)
        if batch:
            published = self._publish(batch)
            for outcome in published:
                _merge(outcomes, outcome)
            # Only what published cleanly moves on now; a failure waits for its retry time.
            for work, outcome in zip(batch, published, strict=True):
                if outcome.status == "done":
                    again, _ = self._advance(work.rotation_id, publish_later=False)
                    _merge(outcomes, again)
                self._release(work.rotation_id, work.fence)
        from rotator.notify import remind_pending

        remind_pending(self)
        self.checkpoint()
        return list(outcomes.values())

    def _claim(self, rotation_id: str) -> int:
        now = self.rt.clock()
        with self.rt.store.write() as s:
            rotation = repo.claim(s, rotation_id, self.rt.runner, now, now + LEASE)
            return rotation.fence

    def _release(self, rotation_id: str, fence: int) -> None:
        with self.rt.store.write() as s:
            rotation = s.get(Rotation, rotation_id)
            if rotation is not None and rotation.fence == fence:
                rotation.claimed_by = None
                rotation.claimed_until = None
                s.add(rotation)

    def _advance(self, rotation_id: str, *, publish_later: bool) -> tuple[Outcome, Work | None]:
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
                    if rotation.state == m.PROMOTED and rotation.kind == m.QUARTERLY:
                        monitor_due = True
                    else:
                        monitor_due = False
                    decision = m.next_decision(self.facts(s, rotation, unit, now))
                    if not isinstance(decision, m.Do) and not monitor_due:
                        self._settle(s, rotation, unit, decision, now)
                if monitor_due:
                    healthy = self._monitor(rotation_id, fence, unit)
                    if not healthy:
                        steps.append("rollback")
                        return Outcome(
                            label, "done", steps, "rolled back: production unhealthy"
                        ), None
                    if not isinstance(decision, m.Do):
                        with self.rt.store.write() as s:
                            rotation = repo.fenced(s, rotation_id, fence)
                            self._settle(s, rotation, unit, decision, now)
                        return _outcome(label, steps, decision), None
                if not isinstance(decision, m.Do):
                    return _outcome(label, steps, decision), None
                if decision.step in PUBLISHING_STEPS:
                    work = self._begin(rotation_id, fence, decision.step)
                    if publish_later:
                        # The claim is kept until the batch is published (see `run`).
                        keep_claim = True
                        return Outcome(label, "done" if steps else "waiting", steps), work
                    published = self._publish([work])[0]
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
        finally:
            if not keep_claim:
                self._release(rotation_id, fence)

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
    def _begin(self, rotation_id: str, fence: int, step: str, *, intent: bool = True) -> Work:
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
            if not intent:
                return work
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
        work = self._begin(rotation_id, fence, step)
        try:
            apply = STEP_IMPLEMENTATIONS[step](self, work)
        except Exception as exc:
            return self._fail_or_wait(work, exc)
        return self._finish(work, apply)

    def _finish(self, work: Work, apply: Apply, status: str = "done") -> str:
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
                rotation.active = False
                rotation.finished_at = self.rt.clock()
                rotation.next_check_at = None
            if rotation.state in (m.REVOKED, *m.TERMINAL):
                # A credential was retired: the next cycle's generate may open now.
                for other in repo.active_rotations(s, rotation.secret_id):
                    if other.id != rotation.id:
                        other.next_check_at = self.rt.clock()
                        s.add(other)
        return "ok" if rotation.state not in (m.AWAITING_SUPPLY, m.AWAITING_REVOKE) else "person"

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

    def _fail_or_wait(self, work: Work, exc: Exception) -> str:
        """Turn a step's exception into its durable consequence: wait, person, retry, failed."""
        if isinstance(exc, NeedsPersonError):
            waiting = m.AWAITING_SUPPLY if work.step == "generate" else m.AWAITING_REVOKE

            def to_person(s: Session, rotation: Rotation) -> None:
                rotation.state = waiting
                repo.set_facts(rotation, instruction=exc.instruction)

            with self.rt.store.write() as s:
                rotation = repo.fenced(s, work.rotation_id, work.fence)
                to_person(s, rotation)
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
        if not isinstance(exc, RotatorError):
            raise exc
        message = str(exc)
        needs_person = isinstance(exc, NEEDS_PERSON)
        status = getattr(exc, "status", None)
        with self.rt.store.write() as s:
            rotation = repo.fenced(s, work.rotation_id, work.fence)
            rotation.attempts += 1
            rotation.last_error = message
            now = self.rt.clock()
            if needs_person or rotation.attempts >= RETRY_BUDGET:
                repo.set_facts(rotation, failed_state=rotation.state, failed_step=work.step)
                rotation.state = m.FAILED
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
        retired = self._revoke_all(work, work.to_revoke, allow_person=False)
        generated = provider.generate(self.ctx(work))
        fingerprint = self.rt.fingerprint(generated.value)

        def apply(s: Session, rotation: Rotation) -> None:
            self._mark_revoked(s, work, retired)
            self._store_pending(
                s,
                work,
                rotation,
                generated.value,
                generated.ref,
                dict(generated.notes),
                fingerprint,
            )
            rotation.state = m.GENERATED

        return apply

    def _store_pending(
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
            rotation.state = m.VALIDATED

        return apply

    def do_monitor(self, work: Work) -> Apply:
        # The production check of this run already passed (see `_monitor`); the
        # monitoring period is over, so the rotation may move on to revocation.
        def apply(s: Session, rotation: Rotation) -> None:
            rotation.state = m.MONITORED

        return apply

    def do_revoke(self, work: Work) -> Apply:
        revoked = self._revoke_all(work, work.to_revoke, allow_person=True)
        rolling_back = bool(work.facts.get("rolling_back"))

        def apply(s: Session, rotation: Rotation) -> None:
            self._mark_revoked(s, work, revoked)
            rotation.state = m.ROLLED_BACK if rolling_back else m.REVOKED

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
            rotation.state = m.COMPLETED

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

    def _mark_revoked(self, s: Session, work: Work, ids: list[str]) -> None:
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
        check = HealthCheck(environment.url, environment.health_path, environment.expected_status)
        require_healthy(check, self.rt.http, environment=env, sleep=self.rt.sleep)

    def _healthy(self, env: str) -> tuple[bool, str]:
        try:
            self._require_healthy(env)
        except HealthCheckError as exc:
            return False, str(exc)
        return True, ""

    # ----------------------------------------------------------------- publishing
    def _publish(self, batch: list[Work]) -> list[Outcome]:
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
                apply = self._after_publish(work, envs)
            except Exception as exc:
                if work.step == "promote" and isinstance(exc, HealthCheckError):
                    outcomes.append(self._rollback_now(work, str(exc)))
                    continue
                result = self._fail_or_wait(work, exc)
                outcomes.append(
                    Outcome(
                        work.unit.label,
                        _status_of(result),
                        [work.step],
                        self._last_error(work.rotation_id),
                    )
                )
                continue
            self._finish(work, apply)
            self.rt.progress(f"{work.unit.label}: {work.step} ok")
            outcomes.append(Outcome(work.unit.label, "done", [work.step]))
        return outcomes

    def _publish_env(self, env: str, values: dict[str, Secret]) -> None:
        targets = self.rt.targets(env)
        for target in targets:
            target.publish(values)
        for target in targets:
            target.finish()

    def _after_publish(self, work: Work, envs: tuple[str, ...]) -> Apply:
        """Check health where the value went; for an emergency stage, validate too."""
        provider = self.rt.provider(work.unit.spec.provider)
        assert work.pending is not None
        for env in envs:
            self._require_healthy(env)
        if work.step == "stage":
            if work.kind == m.EMERGENCY:
                provider.validate(self.ctx(work), work.pending[1])
            staged_at = self.rt.clock().isoformat()

            def staged(s: Session, rotation: Rotation) -> None:
                rotation.state = m.STAGED
                repo.set_facts(rotation, staged_at=staged_at)

            return staged
        promoted_at = self.rt.clock()

        def promoted(s: Session, rotation: Rotation) -> None:
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
            rotation.state = m.PROMOTED
            repo.set_facts(rotation, promoted_at=promoted_at.isoformat())
            self.audit(
                s,
                "credential.promoted",
                unit=work.unit,
                rotation_id=rotation.id,
                version=new.id if new else None,
                previous=old.id if old else None,
            )

        return promoted

    # ----------------------------------------------------------------- rollback
    def _monitor(self, rotation_id: str, fence: int, unit: Unit) -> bool:
        """Check production during monitoring; roll back on failure. True when healthy."""
        for env in unit.promote_envs:
            ok, detail = self._healthy(env)
            if not ok:
                work = self._begin(rotation_id, fence, "rollback")
                self._rollback_now(work, f"monitoring: {detail}")
                return False
            with self.rt.store.write() as s:
                repo.fenced(s, rotation_id, fence)
                self.audit(
                    s,
                    "health.checked",
                    unit=unit,
                    rotation_id=rotation_id,
                    environment_checked=env,
                    healthy=True,
                )
        return True

    def _rollback_now(self, work: Work, reason: str) -> Outcome:
        """Republish the previous value everywhere the new one went, then revoke the new one."""
        if work.step != "rollback":
            work = self._begin(work.rotation_id, work.fence, "rollback")
        try:
            apply = self.do_rollback(work, reason)
        except Exception as exc:
            result = self._fail_or_wait(work, exc)
            return Outcome(work.unit.label, _status_of(result), ["rollback"], result)
        result = self._finish(work, apply)
        self.notify(
            "rollback",
            f"{work.unit.label} was rolled back to its previous value: {reason}",
            unit=work.unit,
        )
        return Outcome(
            work.unit.label, "done" if result == "ok" else "person", ["rollback"], reason
        )

    def do_rollback(self, work: Work, reason: str) -> Apply:
        # Before promotion the "old" value is the current one; after, it is the previous.
        promoted = work.previous is not None and work.facts.get("promoted_at") is not None
        old = work.previous if promoted else work.current
        new = work.current if promoted else work.pending
        envs = work.unit.stage_envs + (work.unit.promote_envs if promoted else ())
        if old is not None:
            for env in envs:
                self._publish_env(env, {work.unit.spec.variable: old[1]})
            for env in envs:
                self._require_healthy(env)
        to_revoke: list[tuple[CredentialVersion, Secret | None]] = [new] if new else []
        # The restored value is the one in use again: providers that sign in with the
        # current credential (Resend) must use it, not the one being revoked.
        work.current = old
        try:
            revoked = self._revoke_all(work, to_revoke, allow_person=True)
            person = None
        except NeedsPersonError as exc:
            revoked, person = [], exc.instruction

        def apply(s: Session, rotation: Rotation) -> None:
            record = s.get(SecretRecord, rotation.secret_id)
            assert record is not None
            if promoted and old is not None and new is not None:
                o, n = s.get(CredentialVersion, old[0].id), s.get(CredentialVersion, new[0].id)
                if o is not None and n is not None:
                    o.state, n.state = repo.CURRENT, repo.PREVIOUS
                    s.add_all([o, n])
            self._mark_revoked(s, work, revoked)
            self.audit(
                s, "rotation.rolled_back", unit=work.unit, rotation_id=rotation.id, reason=reason
            )
            if person is not None and new is not None:
                rotation.state = m.AWAITING_REVOKE
                repo.set_facts(rotation, rolling_back=True, revoke=[new[0].id], instruction=person)
            else:
                rotation.state = m.ROLLED_BACK

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
            self._release(rotation_id, fence)

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


def _when(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    return as_utc(datetime.fromisoformat(value))


def _status_of(result: str) -> str:
    return {"ok": "done", "person": "person", "failed": "failed", "retry": "retrying"}.get(
        result, "waiting"
    )


def _outcome(label: str, steps: list[str], decision: m.Decision) -> Outcome:
    if isinstance(decision, m.AwaitPerson):
        return Outcome(label, "person", steps, decision.action)
    if isinstance(decision, m.Wait):
        return Outcome(
            label, "done" if steps else "waiting", steps, decision.reason, decision.until
        )
    if isinstance(decision, m.Finished):
        return Outcome(label, "done" if steps else "waiting", steps, decision.state)
    return Outcome(label, "done", steps)


_RANK = {"failed": 5, "retrying": 4, "person": 3, "claimed": 2, "done": 1, "waiting": 0}


def _merge(outcomes: dict[str, Outcome], new: Outcome) -> None:
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
