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
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from rotator import machine as m
from rotator import planning, publishing, revocation, rollback
from rotator import repository as repo
from rotator.clock import FAKE_TIME_ENV, as_utc
from rotator.deployments import mark as mark_served
from rotator.deployments import served_by
from rotator.errors import (
    AuditWriteError,
    ClaimedElsewhereError,
    KeyMaterialError,
    NeedsPersonError,
    NotSupportedError,
    ProviderError,
    ProviderRefusedError,
    RefusedError,
    RetryLaterError,
    RollbackIncompleteError,
    RotatorError,
    StoreError,
    TargetConfigError,
    TargetError,
    UnknownNameError,
)
from rotator.redact import scrub
from rotator.runtime import Runtime
from rotator.secret import Secret
from rotator.store.cloudflare_budget import PAUSE_OPERATION
from rotator.store.models import CredentialVersion, Rotation, SecretRecord, StepRecord
from rotator.work import (
    Apply,
    Outcome,
    Unit,
    Work,
    merge_outcome,
    outcome_of,
    status_of,
)

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
        except StoreError:
            raise  # the store named its own problem (a lock held too long): exit 6
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
        before, after = m.apply_transition(rotation, event, resume_to=resume_to)
        now = self.rt.clock()
        if after == m.FAILED:
            # A row that ends in FAILED names where to resume; a failed step resumes itself.
            point = (m.resume_point(rotation.kind, before) if event == "done" else None) or before
            repo.set_facts(rotation, failed_state=point)
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

    # ----------------------------------------------------------------- run

    def run(self) -> list[Outcome]:
        """Do every step due now, each secret on its own; return what happened to each."""
        now = self.rt.clock()
        planning.plan_cycles(self, now)
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
            published = publishing.publish_batch(self, batch)
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
        # Staging's and production's signals are looked at once per advance (issue 15).
        looked = watched_production = False
        try:
            for _ in range(20):  # a rotation has fewer rows than this; a guard, not a limit
                now = self.rt.clock()
                with self.rt.store.write() as s:
                    rotation = repo.fenced(s, rotation_id, fence)
                    unit = self._unit_of(s, rotation)
                    label = unit.label
                    state = rotation.state
                    # A promotion is watched on every run until monitoring ends (an
                    # emergency only with a window); staging, before promotion, too.
                    monitor_due = (
                        not watched_production
                        and state == m.PROMOTED
                        and (rotation.kind == m.QUARTERLY or bool(planning.emergency_window(self)))
                    )
                    stage_due = not looked and staging_watched(self, rotation, unit)
                    decision = m.next_decision(planning.facts(self, s, rotation, unit, now))
                    if not isinstance(decision, m.Do) and not monitor_due and not stage_due:
                        self._settle(s, rotation, unit, decision, now)
                if stage_due:
                    from rotator.signals.watch import watch

                    looked = True
                    # The figures are audited when a gate step is about to run.
                    gate = isinstance(decision, m.Do)
                    envs = unit.stage_envs
                    if watch(self, rotation_id, fence, unit, envs, stage=True, audit_ok=gate) == (
                        "degraded"
                    ):
                        steps.append("watch")
                    continue  # decide again on what was seen
                if monitor_due:
                    watched_production = True
                    if not rollback.monitor(self, rotation_id, fence, unit):
                        steps.append("monitor")
                    continue  # decide again on what was seen (`rollback` when degraded)
                if not isinstance(decision, m.Do):
                    if state == m.FAILED:
                        message = self.last_error(rotation_id) or "needs a person"
                        return Outcome(label, "failed", steps, message), None
                    return outcome_of(label, steps, decision, state), None
                if decision.step in PUBLISHING_STEPS:
                    work = self.begin(rotation_id, fence, decision.step)
                    if publish_later:
                        # The claim is kept until the batch is published (see `run`).
                        keep_claim = True
                        return Outcome(label, "done" if steps else "waiting", steps), work
                    published = publishing.publish_batch(self, [work])[0]
                    steps.append(decision.step)
                    if published.status != "done" or published.steps != [decision.step]:
                        published.steps = steps
                        return published, None
                    continue
                self._local.note = None  # a step may say more than "ok" (notify: skipped)
                result = self._execute(rotation_id, fence, decision.step)
                steps.append(decision.step)
                note = self._local.note if result == "ok" else None
                self.rt.progress(f"{label}: {decision.step} {note or result}")
                if result != "ok":
                    message = self.last_error(rotation_id) or result
                    return Outcome(label, status_of(result), steps, message), None
            return Outcome(label, "done", steps), None
        except ClaimedElsewhereError as exc:
            return Outcome(label, "claimed", steps, str(exc)), None
        except RotatorError as exc:
            return Outcome(label, "failed", steps, scrub(str(exc))), None
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
        if staging_watched(self, rotation, unit):
            rotation.next_check_at = now  # so is staging before promotion, with signals
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
            work.begun_in = rotation.state
            need = _values_needed(step, rotation.kind)
            for state in (repo.CURRENT, repo.PENDING, repo.PREVIOUS):
                version = repo.version_in(s, record.id or 0, state)
                if version is None:
                    continue
                value = None
                if state in need and version.ciphertext is not None:
                    value = self.reveal(s, unit, record, version, rotation_id, step)
                if value is not None:
                    setattr(work, state, (version, value))
            if step in ("revoke", "generate"):
                work.to_revoke = revocation.revocation_list(
                    self, s, unit, record, rotation, work, step
                )
            current = repo.version_in(s, record.id or 0, repo.CURRENT)
            work.current_id = current.id if current else None
            targets = publishing.deploy_targets(self, unit)
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

    def reveal(
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

    def _execute(self, rotation_id: str, fence: int, step: str) -> str:
        work = self.begin(rotation_id, fence, step)
        try:
            apply = STEP_IMPLEMENTATIONS[step](self, work)
        except Exception as exc:
            return self.fail_or_wait(work, exc)
        result = self.finish(work, apply)
        if step == "rollback":
            rollback.tell_rolled_back(self, work, result)
        return result

    def finish(
        self, work: Work, apply: Apply, status: str = "done", *, report: list[str] | None = None
    ) -> str:
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
                targets=report or None,
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
            message = scrub(str(exc))  # an error body may echo a value back
        else:
            import traceback

            # A bug counts against the retry budget like any failure, so it cannot loop.
            frames = "".join(traceback.format_tb(exc.__traceback__))
            log.error("%s: unexpected %s\n%s", work.unit.label, type(exc).__name__, frames)
            message = f"unexpected {type(exc).__name__} during {work.step} (a bug: see the log)"
        needs_person = isinstance(exc, NEEDS_PERSON)
        status = getattr(exc, "status", None)
        # Waiting for the Cloudflare budget is pacing, not a failure of the step.
        paused = isinstance(exc, RetryLaterError) and exc.operation == PAUSE_OPERATION
        with self.rt.store.write() as s:
            rotation = repo.fenced(s, work.rotation_id, work.fence)
            rotation.attempts += 0 if paused else 1
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

    def last_error(self, rotation_id: str) -> str:
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
            # Providers retry a refusal of a value younger than their propagation window,
            # across processes too: they need its age.
            created_at=work.pending[0].created_at if work.pending else None,
        )

    def do_generate(self, work: Work) -> Apply:
        provider = self.rt.provider(work.unit.spec.provider)
        # Retire compromised credentials first (at most two live), but never one a target
        # still serves: those environments go back to the current credential first.
        publishing.unserve(self, work, [v.id for v, _ in work.to_revoke])
        retired = revocation.revoke_all(self, work, work.to_revoke, allow_person=False)
        generated = provider.generate(self.ctx(work))
        fingerprint = self.rt.fingerprint(generated.value)
        known = revocation.known_fingerprint(self, work.unit, fingerprint)
        if known:
            raise ProviderRefusedError(
                f"{work.unit.label}: the provider returned a value that is {known}; "
                "a used value never becomes current again",
                provider=provider.name,
                operation="generate",
            )

        def apply(s: Session, rotation: Rotation) -> None:
            revocation.mark_revoked(self, s, work, retired)
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
            publishing.require_healthy(self, env)

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
        revoked = revocation.revoke_all(self, work, work.to_revoke, allow_person=True)

        def apply(s: Session, rotation: Rotation) -> None:
            revocation.mark_revoked(self, s, work, revoked)
            self.change_state(s, rotation, "done", unit=work.unit)

        return apply

    def do_notify(self, work: Work) -> Apply:
        from rotator.notify import step_note

        reason = work.facts.get("reason", "")
        failed = self.notify(
            "emergency-finished",
            f"Emergency rotation of {work.unit.label} is complete. Reason: {reason}. "
            "The compromised credentials are revoked and the new value is deployed to "
            "staging and production. Nothing else is needed unless you hold a copy of the "
            "old value somewhere outside Cloudflare: replace it.",
            unit=work.unit,
        )
        self._local.note = step_note(self, failed)  # the progress line's word: not always ok

        def apply(s: Session, rotation: Rotation) -> None:
            self.change_state(s, rotation, "done", unit=work.unit)

        return apply

    # ----------------------------------------------------------------- publishing

    # ----------------------------------------------------------------- monitoring, rollback

    # ----------------------------------------------------------------- notifications
    def notify(self, event: str, text: str, *, unit: Unit | None = None) -> list[str]:
        """Send, or hold for a mass emergency's one message; return the channels that failed."""
        held = self.notifications_held
        if held is not None and event in ("emergency-started", "emergency-finished"):
            # A mass emergency tells people once, with the whole list, not once per secret.
            if event == "emergency-finished":
                held.append(f"- {unit.label if unit else '?'}: rotated, old credentials revoked")
            return []
        from rotator.notify import send

        return send(self, event, text, unit=unit)

    def notify_person(self, unit: Unit, rotation_id: str, step: str, instruction: str) -> None:
        self.notify(
            "person-needed",
            f"{unit.label}: a person is needed for {step}.\n{instruction}",
            unit=unit,
        )

    # ----------------------------------------------------------------- delegated concerns
    # The public API of the concerns that live in their own modules, for the commands.
    def facts(self, s: Session, rotation: Rotation, unit: Unit, now: datetime) -> m.Facts:
        return planning.facts(self, s, rotation, unit, now)

    def plan_cycles(self, now: datetime) -> int:
        return planning.plan_cycles(self, now)

    def publish_batch(self, batch: list[Work]) -> list[Outcome]:
        return publishing.publish_batch(self, batch)

    def healthy(self, env: str) -> tuple[bool, str]:
        return publishing.healthy(self, env)

    def deploy_targets(self, unit: Unit) -> dict[str, list[str]]:
        return publishing.deploy_targets(self, unit)

    def mark_revoked(self, s: Session, work: Work, ids: list[str]) -> None:
        revocation.mark_revoked(self, s, work, ids)

    def known_fingerprint(self, unit: Unit, fingerprint: str) -> str | None:
        return revocation.known_fingerprint(self, unit, fingerprint)

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
    "rollback": rollback.do_rollback,
    "generate": Engine.do_generate,
    "validate": Engine.do_validate,
    "monitor": Engine.do_monitor,
    "revoke": Engine.do_revoke,
    "notify": Engine.do_notify,
}


def staging_watched(engine: Engine, rotation: Rotation, unit: Unit) -> bool:
    """A quarterly rotation staged but not promoted, with staging signals: looked at each run."""
    if rotation.kind != m.QUARTERLY or rotation.state not in (m.STAGED, m.VALIDATED):
        return False
    from rotator.signals.watch import watched

    return watched(engine, unit.stage_envs)


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


__all__ = ["Engine", "Outcome", "ProviderError", "TargetError", "Unit"]
