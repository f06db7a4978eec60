"""Describe every secret as Prometheus metrics for node_exporter's textfile collector.

The text is written by hand (the exposition format is a few lines of grammar) so that
`prometheus_client` stays a test dependency. Nothing here carries a value: the labels are
secret names, scopes, providers, states and channel names. The file is replaced
atomically, as the textfile collector requires: it reads whatever is in the directory at
scrape time, and a half-written file would be a scrape error.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlmodel import col, select

from rotator import machine as m
from rotator import repository as repo
from rotator.clock import as_utc
from rotator.store.models import Meta, NotificationLog, Rotation

if TYPE_CHECKING:
    from sqlmodel import Session

    from rotator.engine import Engine, Unit

LAST_SUCCESSFUL_RUN = "last_successful_run"
"""The `meta` row holding the ISO time at which the last `rotate run` finished cleanly."""
IDLE = "idle"
"""The state shown for a secret with no rotation in flight."""


@dataclass
class Family:
    """One metric family: its help, type and samples (labels, value)."""

    name: str
    kind: str
    help: str
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)

    def add(self, labels: dict[str, str], value: float) -> None:
        self.samples.append((labels, value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def format_families(families: Iterable[Family]) -> str:
    """Render families in the Prometheus text exposition format (version 0.0.4)."""
    lines: list[str] = []
    for fam in families:
        lines.append(f"# HELP {fam.name} {fam.help}")
        lines.append(f"# TYPE {fam.name} {fam.kind}")
        for labels, value in fam.samples:
            inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            lines.append(
                f"{fam.name}{{{inner}}} {_number(value)}"
                if inner
                else f"{fam.name} {_number(value)}"
            )
    return "\n".join(lines) + "\n"


def render_metrics(engine: Engine) -> str:
    """Return the metrics of every secret unit, the notification channels and the last run."""
    rt = engine.rt
    now = rt.clock()
    age = Family(
        "rotator_secret_value_age_seconds",
        "gauge",
        "Seconds since the current value was promoted (or imported).",
    )
    has_current = Family(
        "rotator_secret_has_current_value",
        "gauge",
        "1 if a current value is recorded for the secret, else 0.",
    )
    next_gate = Family(
        "rotator_secret_next_gate_seconds",
        "gauge",
        "Seconds until the next step of the secret may run (0: due now); "
        "absent while a person is needed.",
    )
    state = Family(
        "rotator_secret_state",
        "gauge",
        "1 per rotation in flight, labelled by kind and state; state idle when none.",
    )
    person = Family(
        "rotator_secret_needs_person",
        "gauge",
        "1 if a rotation of the secret waits for a person (supply, confirm, "
        "approve, review or a failure), else 0.",
    )
    failed = Family(
        "rotator_secret_rotations_failed",
        "gauge",
        "Rotations in state failed: their retry budget is spent.",
    )
    attempts = Family(
        "rotator_secret_step_attempts",
        "gauge",
        "Failed attempts of the step each rotation is retrying, summed.",
    )
    signal_rate = Family(
        "rotator_signal_error_rate",
        "gauge",
        "Error rate a monitoring signal last saw for a rotation in flight: window current "
        "(since the previous look) or baseline (the same span before the change).",
    )
    signal_threshold = Family(
        "rotator_signal_error_rate_threshold",
        "gauge",
        "The error rate above which the signal is degraded (settings of the inventory).",
    )
    signal_status = Family(
        "rotator_signal_status",
        "gauge",
        "1 for the last verdict (ok, degraded, unknown) of each signal of a rotation in flight.",
    )
    with rt.store.read() as s:
        for unit in engine.units():
            labels = {
                "secret": unit.spec.name,
                "scope": unit.scope_env,
                "provider": unit.spec.provider,
            }
            record = repo.find_secret(s, unit.spec.name, unit.scope_env)
            rotations = repo.active_rotations(s, record.id) if record and record.id else []
            version = repo.version_in(s, record.id, repo.CURRENT) if record and record.id else None
            has_current.add(labels, 1 if version else 0)
            if version is not None:
                since = as_utc(version.promoted_at or version.created_at)
                age.add(labels, max(0.0, (now - since).total_seconds()))
            waits_person = False
            for r in rotations:
                _signal_samples(r, labels, signal_rate, signal_threshold, signal_status)
                state.add({**labels, "kind": r.kind, "state": r.state}, 1)
                waits_person = waits_person or _needs_person(r)
                if r.state == m.VALIDATED and not waits_person:
                    # An approval the promotion waits for is a person's turn too.
                    decision = m.next_decision(engine.facts(s, r, unit, now))
                    waits_person = isinstance(decision, m.AwaitPerson)
            if not rotations:
                state.add({**labels, "kind": "-", "state": IDLE}, 1)
            person.add(labels, 1 if waits_person else 0)
            failed.add(labels, sum(1 for r in rotations if r.state == m.FAILED))
            attempts.add(labels, sum(r.attempts for r in rotations))
            planned = _cycle_planned(engine, s, record.id if record else None, now)
            gate = _next_gate(engine, s, unit, rotations, now, planned)
            if gate is not None:
                next_gate.add(labels, max(0.0, (gate - now).total_seconds()))
        channels = _channel_families(s)
        last_run = s.get(Meta, LAST_SUCCESSFUL_RUN)
    run = Family(
        "rotator_last_successful_run_timestamp_seconds",
        "gauge",
        "Unix time at which the last `rotate run` finished without a failed secret (0: never).",
    )
    run.add({}, _timestamp(last_run.value) if last_run else 0.0)
    generated = Family(
        "rotator_metrics_generated_timestamp_seconds",
        "gauge",
        "Unix time at which this file was written.",
    )
    generated.add({}, now.timestamp())
    return format_families(
        [
            age,
            has_current,
            next_gate,
            state,
            person,
            failed,
            attempts,
            signal_rate,
            signal_threshold,
            signal_status,
            *channels,
            run,
            generated,
        ]
    )


def _signal_samples(
    r: Rotation, labels: dict[str, str], rate: Family, threshold: Family, status: Family
) -> None:
    """The figures the last look recorded (`rotator.signals.watch`), per environment."""
    seen = repo.facts_of(r).get("signals") or {}
    if not isinstance(seen, dict):
        return
    for env, verdicts in sorted(seen.items()):
        for v in verdicts if isinstance(verdicts, list) else []:
            base = {**labels, "kind": r.kind, "environment": env, "signal": str(v.get("signal"))}
            status.add({**base, "status": str(v.get("status"))}, 1)
            figures = v.get("figures") or {}
            if "error_rate" in figures:
                rate.add({**base, "window": "current"}, float(figures["error_rate"]))
                rate.add({**base, "window": "baseline"}, float(figures["baseline_error_rate"]))
                threshold.add(base, float(figures["threshold"]))


def _needs_person(r: Rotation) -> bool:
    return m.needs_person(r.kind, r.state)


def _next_gate(
    engine: Engine,
    s: Session,
    unit: Unit,
    rotations: list[Rotation],
    now: datetime,
    planned: bool,
) -> datetime | None:
    """Return when the earliest rotation may next move, or when the next cycle opens."""
    if not rotations:
        return _next_cycle(engine, now) if planned else now
    when: list[datetime] = []
    for r in rotations:
        decision = m.next_decision(engine.facts(s, r, unit, now))
        if isinstance(decision, m.Do):
            when.append(now)
        elif isinstance(decision, m.Wait):
            until = decision.until or (as_utc(r.next_check_at) if r.next_check_at else None)
            if until is not None:
                when.append(as_utc(until))
    return min(when) if when else None


def _cycle_planned(engine: Engine, s: Session, secret_id: int | None, now: datetime) -> bool:
    """Say whether the cycle open in its month 1 now (if any) has its rotation already."""
    from schedules import current_cycle_start

    inv = engine.rt.inventory
    cycle = current_cycle_start(now, inv.tz, inv.quarter_start_months)
    if cycle.month_of(now.astimezone(inv.tz).date()) != 1:
        return True
    if secret_id is None:
        return False
    found = s.exec(
        select(Rotation.id).where(Rotation.secret_id == secret_id, Rotation.cycle == cycle.id)
    ).first()
    return found is not None


def _next_cycle(engine: Engine, now: datetime) -> datetime:
    from schedules import cycle_for, month_gate

    inv = engine.rt.inventory
    local = now.astimezone(inv.tz)
    year, month = local.year, local.month
    for _ in range(12):
        month += 1
        if month > 12:
            year, month = year + 1, 1
        if month in inv.quarter_start_months:
            break
    return month_gate(cycle_for(local.date().replace(year=year, month=month, day=1)), 1, inv.tz)


def _channel_families(s: Session) -> list[Family]:
    sent = Family(
        "rotator_notifications_sent_total", "counter", "Notifications delivered, per channel."
    )
    failures = Family(
        "rotator_notification_failures_total",
        "counter",
        "Notifications a channel failed to deliver (each one audited as notification.failed).",
    )
    last = Family(
        "rotator_notification_last_failure_timestamp_seconds",
        "gauge",
        "Unix time of the channel's last failed delivery.",
    )
    counts: dict[str, list[int]] = {}
    latest: dict[str, datetime] = {}
    for row in s.exec(select(NotificationLog).order_by(col(NotificationLog.id))):
        ok_failed = counts.setdefault(row.channel, [0, 0])
        ok_failed[0 if row.ok else 1] += 1
        if not row.ok:
            latest[row.channel] = as_utc(row.at)
    for channel, (ok, bad) in sorted(counts.items()):
        sent.add({"channel": channel}, ok)
        failures.add({"channel": channel}, bad)
        if channel in latest:
            last.add({"channel": channel}, latest[channel].timestamp())
    return [sent, failures, last]


def _timestamp(text: str) -> float:
    try:
        return as_utc(datetime.fromisoformat(text)).timestamp()
    except ValueError:
        return 0.0


def record_successful_run(engine: Engine, at: datetime | None = None) -> None:
    """Store when a `rotate run` finished with no failed secret, for the metrics."""
    from sqlalchemy.exc import IntegrityError

    when = as_utc(at or engine.rt.clock()).isoformat()
    for attempt in (1, 2):
        try:
            with engine.rt.store.write() as s:
                row = s.get(Meta, LAST_SUCCESSFUL_RUN)
                if row is None:
                    row = Meta(key=LAST_SUCCESSFUL_RUN, value=when)
                row.value = when
                s.add(row)
            return
        except IntegrityError:
            # Two runners finishing at once both found no row (PostgreSQL, READ
            # COMMITTED) and both inserted; the second try finds the other's row.
            if attempt == 2:
                raise


def write_metrics_file(text: str, path: str | Path) -> Path:
    """Replace `path` with `text` atomically, never through a planted link (0644, no values).

    The collector reads only *.prom, and `rotator.safefile` names its temporary file
    `.<name>.<pid>.<random>.tmp`, which does not end in .prom.
    """
    from rotator.errors import OutputFileError
    from rotator.safefile import write_output

    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputFileError(
            f"cannot create the directory {target.parent} for the metrics file: "
            f"{exc.strerror}; create it or choose another --out"
        ) from None
    # node_exporter usually runs as another user: the file names no value, so 0644.
    return write_output(target, text, mode=0o644)
