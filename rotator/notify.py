"""Tell people: email through Resend, a Slack-compatible webhook, or a command hook.

A channel that fails never stops a rotation: the failure is audited and shown in
`status`. A reminder for the same pending action goes out once per day, not every run.
No message carries a secret value; they name secrets, steps and commands only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shlex
import subprocess
from typing import TYPE_CHECKING, Any

from sqlmodel import select

from rotator.store.models import NotificationLog

if TYPE_CHECKING:
    from rotator.engine import Engine, Unit

log = logging.getLogger("rotator.notify")

DAILY = ("person-needed",)
"""Events that repeat while a person has not acted: sent at most once a day."""


def send(engine: Engine, event: str, text: str, *, unit: Unit | None = None) -> list[str]:
    """Send `text` to every configured channel; return the channels that failed."""
    rt = engine.rt
    channels = rt.inventory.notifications
    if not channels:
        return []
    now = rt.clock()
    day = now.astimezone(rt.inventory.tz).date().isoformat()
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
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
            message = f"{type(exc).__name__}: {exc}"[:300]
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
            json={"text": f"{subject}\n{payload['text']}", **payload},
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
        done = subprocess.run(
            argv, input=json.dumps(payload).encode(), capture_output=True, timeout=60, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"command hook exited {done.returncode}")
