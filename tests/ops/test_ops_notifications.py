"""Notifications against the sandbox: emergency emails and webhooks, daily reminders, failures."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from ops_world import OpsWorld, WebhookReceiver, closed_port_url, ops_world
from sqlmodel import select

from rotator import commands
from rotator.metrics import render_metrics
from rotator.notify import notification_failures, remind_pending
from rotator.store.models import AuditEvent

RESEND = "BANDOFBAKERS_RESEND_API_KEY"
STRIPE = "BANDOFBAKERS_STRIPE_SECRET_KEY"


def _events(engine, event_type: str) -> list[dict]:
    with engine.rt.store.read() as s:
        rows = s.exec(select(AuditEvent).where(AuditEvent.event_type == event_type)).all()
        return [json.loads(r.entry) for r in rows]


def test_an_emergency_sends_one_started_and_one_finished_email_and_webhook(
    state_dir: Path, tmp_path: Path
) -> None:
    with WebhookReceiver() as hook, ops_world(tmp_path, webhook_url=hook.url) as world:
        security = world.engine("security@test")
        unit = security.unit(RESEND, None)
        rid = commands.start_emergency(security, unit, "key pasted in a public issue")
        outcome = commands.drive(security, rid)
        security.checkpoint()
        assert outcome.status == "done", outcome

        emails = world.sandbox.emails
        subjects = [e.subject for e in emails]
        assert sum("emergency-started" in s for s in subjects) == 1, subjects
        assert sum("emergency-finished" in s for s in subjects) == 1, subjects
        assert len(emails) == 2, subjects
        assert all(e.to == ["security@bandofbakers.example"] for e in emails)
        started = next(e for e in emails if "emergency-started" in e.subject)
        assert "key pasted in a public issue" in started.text
        assert "security@test" in started.text

        events = [b["event"] for b in hook.bodies]
        assert events.count("emergency-started") == 1, events
        assert events.count("emergency-finished") == 1, events
        assert all(b["secret"] == RESEND for b in hook.bodies)
        assert all(b["text"].startswith("[rotator] ") for b in hook.bodies)

        values = world.issued_values()
        assert len(values) > 8  # old and new Resend keys, Stripe, Google, Cloudflare...
        sent = [e.subject + "\n" + e.text for e in emails] + [r.decode() for r in hook.raw]
        for value in values:
            for message in sent:
                assert value not in message


def test_a_pending_supply_is_reminded_once_a_day_over_ten_daily_runs(
    state_dir: Path, tmp_path: Path
) -> None:
    with (
        WebhookReceiver() as hook,
        ops_world(
            tmp_path, start=date(2027, 1, 1), webhook_url=hook.url, notify_email=False
        ) as world,
    ):
        for n in range(10):
            world.at(date(2027, 1, 1) + timedelta(days=n))
            engine = world.engine()
            engine.run()
            # Hourly cron on the same day must not remind again.
            remind_pending(engine)
            world.sim.sleep(3600)
            remind_pending(world.engine())

        stripe = [b for b in hook.bodies if b["event"] == "person-needed" and b["secret"] == STRIPE]
        days = [b["time"][:10] for b in stripe]
        assert len(stripe) == 10, days
        assert len(set(days)) == 10
        assert "rotate supply BANDOFBAKERS_STRIPE_SECRET_KEY" in stripe[0]["text"]
        assert "Dashboard" in stripe[0]["text"]


def test_a_failing_channel_leaves_the_rotation_done_and_is_audited(
    state_dir: Path, tmp_path: Path
) -> None:
    with ops_world(tmp_path, webhook_url=closed_port_url(), notify_email=False) as world:
        security = world.engine("security@test")
        unit = security.unit(RESEND, None)
        rid = commands.start_emergency(security, unit, "leaked in a log")
        outcome = commands.drive(security, rid)
        security.checkpoint()
        assert outcome.status == "done", outcome
        assert "notify" in outcome.steps

        row = next(r for r in commands.status(security) if r["secret"] == RESEND)
        assert row["rotations"] == []  # finished, not stuck on the broken channel
        shown = commands.show(security, unit)
        assert shown["rotations"][-1]["state"] == "completed"

        failed = _events(security, "notification.failed")
        assert {e["details"]["notification"] for e in failed} >= {
            "emergency-started",
            "emergency-finished",
        }
        assert all(e["details"]["channel"] == "webhook[0]" for e in failed)
        assert all(e["secret"] == RESEND for e in failed)
        # The error names the channel, never its URL (a Slack webhook URL is a credential).
        assert all("127.0.0.1" not in e["details"]["error"] for e in failed)

        listed = notification_failures(security)
        assert listed and listed[0]["channel"] == "webhook[0]"
        assert listed[0]["secret"] == RESEND

        text = render_metrics(security)
        assert 'rotator_notification_failures_total{channel="webhook[0]"} 2' in text


def test_a_missing_approval_is_shown_counted_and_reminded_every_window_day(
    state_dir: Path, tmp_path: Path
) -> None:
    """Issue 18.4: awaiting approval is a person's turn like the others, never a quiet wait."""
    with (
        WebhookReceiver() as hook,
        ops_world(
            tmp_path, start=date(2027, 1, 1), webhook_url=hook.url, notify_email=False
        ) as world,
    ):
        days = [date(2027, 1, 1), date(2027, 2, 1)] + [
            date(2027, 3, 2) + timedelta(days=n) for n in range(5)
        ]
        for day in days:
            world.at(day)
            world.engine().run()
        engine = world.engine()
        rows = {(r["secret"], r["scope"]): r for r in commands.status(engine)}
        resend = rows[(RESEND, "shared")]["rotations"][0]
        assert resend["state"] == "validated"
        assert resend["needs_person"] and "rotate approve" in resend["instruction"]
        metrics = render_metrics(engine)
        person = [line for line in metrics.splitlines() if line.startswith("rotator_secret_needs")]
        assert any(RESEND in line and line.endswith(" 1") for line in person), person
        plan = commands.plan(engine, engine.rt.clock())
        line = next(p for p in plan if p.unit == RESEND)
        assert line.action == "person" and "approve" in line.reason
        asked = [
            b
            for b in hook.bodies
            if b["event"] == "person-needed" and b["secret"] == RESEND and "approv" in b["text"]
        ]
        reminded_on = {b["time"][:10] for b in asked}
        assert len(reminded_on) >= 5, reminded_on


def _emergency_progress(world: OpsWorld) -> tuple[str, list[str]]:
    lines: list[str] = []
    security = world.engine("security@test")
    security.rt.progress = lines.append
    unit = security.unit(RESEND, None)
    outcome = commands.drive(security, commands.start_emergency(security, unit, "drill"))
    security.checkpoint()
    return outcome.status, lines


def test_the_notify_step_says_skipped_when_no_channel_is_configured(
    state_dir: Path, tmp_path: Path
) -> None:
    """Issue 19: the notify step's own line, not a CLI rewrite, says nobody was told."""
    with ops_world(tmp_path, notify_email=False) as world:
        assert not world.inventory.notifications
        status, lines = _emergency_progress(world)
    assert status == "done", lines
    assert f"{RESEND}: notify skipped (no channel in the inventory's [notifications])" in lines
    assert not any(line.endswith("notify ok") for line in lines), lines


def test_the_notify_step_names_a_failed_channel(state_dir: Path, tmp_path: Path) -> None:
    with ops_world(tmp_path, webhook_url=closed_port_url(), notify_email=False) as world:
        status, lines = _emergency_progress(world)
    assert status == "done", lines
    notify = [line for line in lines if ": notify " in line]
    assert notify == [
        f"{RESEND}: notify done, but webhook[0] failed (audited; `rotate status` lists it)"
    ], lines


def test_the_notify_step_says_ok_when_every_channel_took_it(
    state_dir: Path, tmp_path: Path
) -> None:
    with WebhookReceiver() as hook, ops_world(tmp_path, webhook_url=hook.url) as world:
        status, lines = _emergency_progress(world)
    assert status == "done", lines
    assert f"{RESEND}: notify ok" in lines, lines


def test_step_note_in_a_mass_emergency_says_held() -> None:
    from types import SimpleNamespace

    from rotator.notify import NO_CHANNEL, step_note

    def engine(channels: list[dict[str, str]], held: list[str] | None) -> Any:
        inventory = SimpleNamespace(notifications=channels)
        return SimpleNamespace(rt=SimpleNamespace(inventory=inventory), notifications_held=held)

    webhook = [{"kind": "webhook"}]
    assert step_note(engine([], []), []) == NO_CHANNEL
    assert step_note(engine(webhook, []), []).startswith("held (a mass emergency")
    assert step_note(engine(webhook, None), []) == "ok"
    assert step_note(engine(webhook, None), ["webhook[0]"]).startswith("done, but webhook[0]")
