"""Tell people: email through Resend, a Slack-compatible webhook, or a command hook.

A channel that fails never stops a rotation: the failure is audited and shown in
`status`. A reminder for the same pending action goes out once per day, not every run:
the first line of a `person-needed` text names the action, and it is the dedupe key, so
the instruction below it may change without a second reminder that day. A failed
delivery counts as that day's attempt; the reminder goes out again the next day.
No message carries a secret value; they name secrets, steps and commands only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shlex
import subprocess
from typing import TYPE_CHECKING, Any

from sqlmodel import select

from rotator.errors import UnknownNameError
from rotator.store.models import NotificationLog

if TYPE_CHECKING:
    from rotator.engine import Engine, Unit

log = logging.getLogger("rotator.notify")

DAILY = ("person-needed",)
"""Events that repeat while a person has not acted: sent at most once a day."""


NO_CHANNEL = "skipped (no channel in the inventory's [notifications])"


def step_note(engine: Engine, failed: list[str]) -> str:
    """Say how a notify step went, for its progress line: ok, skipped, or who failed.

    Decided here, where the channels are, so no caller claims "ok" for a notification
    nobody could receive (issue 19).
    """
    if not engine.rt.inventory.notifications:
        return NO_CHANNEL
    if engine.notifications_held is not None:
        return "held (a mass emergency sends one message for all, at its end)"
    if failed:
        return f"done, but {', '.join(failed)} failed (audited; `rotate status` lists it)"
    return "ok"


def send(engine: Engine, event: str, text: str, *, unit: Unit | None = None) -> list[str]:
    """Send `text` to every configured channel; return the channels that failed."""
    rt = engine.rt
    channels = rt.inventory.notifications
    if not channels:
        return []
    now = rt.clock()
    day = now.astimezone(rt.inventory.tz).date().isoformat()
    # A daily reminder is deduplicated on the action (first line), anything else on its text.
    dedupe_text = text.split("\n", 1)[0] if event in DAILY else text
    digest = hashlib.sha256(dedupe_text.encode()).hexdigest()[:16]
    key = f"{event}:{unit.label if unit else '-'}:{digest}"
    if event in DAILY:
        with rt.store.read() as s:
            seen = s.exec(
                select(NotificationLog).where(
                    NotificationLog.dedupe_key == key, NotificationLog.day == day
                )
            ).first()
        if seen is not None:
            return []
    payload = {
        "event": event,
        "text": text,
        "secret": unit.spec.name if unit else None,
        "environment": unit.scope_env if unit else None,
        "actor": rt.actor,
        "time": now.isoformat(),
    }
    failed = []
    results: list[tuple[str, bool, str | None]] = []
    for i, channel in enumerate(channels):
        name = f"{channel['kind']}[{i}]"
        try:
            _deliver(engine, channel, payload)
            results.append((name, True, None))
        except Exception as exc:  # a broken channel must not stop a rotation
            message = _redacted(f"{type(exc).__name__}: {exc}", channel)[:300]
            log.warning("notification channel %s failed: %s", name, message)
            results.append((name, False, message))
            failed.append(name)
    with rt.store.write() as s:
        for name, ok, error in results:
            s.add(
                NotificationLog(dedupe_key=key, day=day, channel=name, ok=ok, error=error, at=now)
            )
            engine.audit(
                s,
                "notification.sent" if ok else "notification.failed",
                unit=unit,
                notification=event,
                channel=name,
                error=error,
            )
    return failed


def _deliver(engine: Engine, channel: dict[str, Any] | Any, payload: dict[str, Any]) -> None:
    kind = channel["kind"]
    rt = engine.rt
    subject = f"[rotator] {payload['event']}: {payload['secret'] or 'all secrets'}"
    if kind == "webhook":
        response = rt.http.request(
            "POST",
            channel["url"],
            provider="notify",
            operation="webhook",
            idempotent=False,
            json={**payload, "text": f"{subject}\n{payload['text']}"},
        )
        if response.status_code >= 300:
            raise RuntimeError(f"webhook answered HTTP {response.status_code}")
    elif kind == "email":
        base = rt.inventory.providers.get("resend", {}).get("base_url", "https://api.resend.com")
        api_key = rt.credentials.secret(channel.get("api_key", "resend_notifications"))
        to = channel["to"] if isinstance(channel["to"], list) else [channel["to"]]
        response = rt.http.request(
            "POST",
            f"{base}/emails",
            provider="notify",
            operation="send-email",
            idempotent=False,
            headers={"Authorization": f"Bearer {api_key.reveal()}"},
            json={
                "from": channel.get("sender", "rotator@localhost"),
                "to": to,
                "subject": subject,
                "text": payload["text"],
            },
        )
        if response.status_code >= 300:
            raise RuntimeError(f"Resend send-email answered HTTP {response.status_code}")
    elif kind == "command":
        argv = shlex.split(channel["command"])
        # The hook gets the event on stdin and a minimal environment: never rotator's own,
        # which may hold the Cloudflare token or the master key.
        keep = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "USER", "LOGNAME")
        env = {k: os.environ[k] for k in keep if k in os.environ}
        done = subprocess.run(
            argv,
            input=json.dumps(payload).encode(),
            capture_output=True,
            timeout=60,
            check=False,
            env=env,
        )
        if done.returncode != 0:
            raise RuntimeError(f"command hook exited {done.returncode}")


def _redacted(message: str, channel: dict[str, Any] | Any) -> str:
    """Drop the channel's URL and command from an error: a Slack webhook URL is a credential."""
    for key in ("url", "command"):
        secretish = channel.get(key) if isinstance(channel, dict) else None
        if isinstance(secretish, str) and secretish:
            message = message.replace(secretish, f"<{channel['kind']} {key}>")
    return message


def remind_pending(engine: Engine) -> int:
    """Send today's reminder for every action a person owes; return how many went out.

    Meant for the end of every `rotate run`: the daily dedupe makes a second call the same
    day send nothing, so cron may run hourly without flooding anyone.
    """
    from sqlmodel import col

    from rotator import machine as m
    from rotator import repository as repo
    from rotator.store.models import Rotation, SecretRecord

    rt = engine.rt
    if not rt.inventory.notifications:
        return 0
    now = rt.clock()
    due: list[tuple[Unit, str]] = []
    # Only rotations a person may owe something on: cheap on a big inventory where
    # almost every rotation is waiting for a date, not for a person.
    person_states = (*m.PERSON_STATES, m.REVOKED)
    with rt.store.read() as s:
        active = s.exec(
            select(Rotation, SecretRecord)
            .join(SecretRecord, col(SecretRecord.id) == col(Rotation.secret_id))
            .where(col(Rotation.active).is_(True))
            .where(
                # A validated one may wait for an approval (a person's turn, found below),
                # reminded every day it waits, not only on the day its check was due.
                col(Rotation.state).in_((*person_states, m.VALIDATED))
            )
        ).all()
        for r, record in active:
            scope = None if record.scope_env == "shared" else record.scope_env
            try:
                unit = engine.unit(record.name, scope)
            except UnknownNameError:  # a secret removed from the inventory: nobody to remind
                log.info("no reminder for %s: it is no longer in the inventory", record.name)
                continue
            facts = repo.facts_of(r)
            if r.state == m.AWAITING_SUPPLY:
                step, instruction = "generate", str(facts.get("instruction", ""))
            elif r.state in (m.AWAITING_REVOKE, m.AWAITING_DISCARD):
                step, instruction = "revoke", str(facts.get("instruction", ""))
            elif r.state == m.FAILED and facts.get("instruction"):
                step = "the emergency (rolled back)"
                instruction = str(facts.get("instruction"))
            elif r.state == m.FAILED:
                step = f"{facts.get('failed_step', 'a step')} (failed)"
                instruction = (
                    f"The step failed after its retry budget: {r.last_error}\n"
                    f"Fix the cause, then run: rotate resume {unit.spec.name}{unit.env_flag}"
                )
            else:
                step, instruction = _decision_reminder(engine, s, r, unit, now)
                if not step:
                    continue
            due.append((unit, f"{unit.label}: a person is needed for {step}.\n{instruction}"))
    sent = 0
    for unit, text in due:
        before = _sent_today(engine, unit, text)
        send(engine, "person-needed", text, unit=unit)
        sent += 0 if before else 1
    return sent


def _decision_reminder(engine: Engine, s: Any, r: Any, unit: Unit, now: Any) -> tuple[str, str]:
    """Name a human gate (approval, review) the rotation waits at, with its command."""
    from rotator import machine as m

    facts = engine.facts(s, r, unit, now)
    decision = m.next_decision(facts)
    if isinstance(decision, m.AwaitPerson):
        command = decision.command.format(secret=unit.spec.name, env=unit.env_flag)
        return decision.action, f"When done, run: {command}"
    return "", ""


def _sent_today(engine: Engine, unit: Unit, text: str) -> bool:
    rt = engine.rt
    day = rt.clock().astimezone(rt.inventory.tz).date().isoformat()
    digest = hashlib.sha256(text.split("\n", 1)[0].encode()).hexdigest()[:16]
    with rt.store.read() as s:
        found = s.exec(
            select(NotificationLog).where(
                NotificationLog.dedupe_key == f"person-needed:{unit.label}:{digest}",
                NotificationLog.day == day,
            )
        ).first()
    return found is not None


def notification_failures(engine: Engine, limit: int = 20) -> list[dict[str, Any]]:
    """Return the latest failed deliveries from the audit trail, newest first, for `status`."""
    from sqlmodel import col

    from rotator.store.models import AuditEvent

    out: list[dict[str, Any]] = []
    with engine.rt.store.read() as s:
        rows = s.exec(
            select(AuditEvent)
            .where(AuditEvent.event_type == "notification.failed")
            .order_by(col(AuditEvent.seq).desc())
            .limit(limit)
        ).all()
        for row in rows:
            details = json.loads(row.entry).get("details", {})
            out.append({
                "time": row.time.isoformat(), "channel": details.get("channel"),
                "notification": details.get("notification"), "error": details.get("error"),
                "secret": row.secret, "scope": row.environment,
            })  # fmt: skip
    return out
