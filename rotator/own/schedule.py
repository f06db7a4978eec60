"""The tool's own credentials on their own cycle (default every 30 days), run by `rotate run`.

No staging or production sequence: a due credential is rotated by overlap in one go, an
interrupted rotation is resumed at the next run. A failure is reported and left for the
next run; it never stops the run of the app's secrets.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from rotator.clock import as_utc
from rotator.own import store as own
from rotator.own.cloudflare import NAME
from rotator.own.google import NAME as GOOGLE

if TYPE_CHECKING:
    from rotator.engine import Engine

DEFAULT_EVERY = "30d"
ROTATABLE = (NAME, GOOGLE)
"""Own credentials the tool rotates itself: the Cloudflare token, the Google key."""


def every(engine: Engine, name: str) -> timedelta:
    from schedules.durations import parse_duration

    ref = engine.rt.inventory.credentials[name]
    return parse_duration(ref.rotate_every or DEFAULT_EVERY)


def next_due(engine: Engine, name: str) -> tuple[datetime | None, str]:
    """Return when `name` is next due (None: not on a cycle) and why."""
    with engine.rt.store.read() as s:
        flight = own.in_flight(s, name)
        current = own.current_row(s, name)
        done = own.last_done(s, name)
    if flight is not None:
        from rotator.repository import held_elsewhere

        now = engine.rt.clock()
        by = (
            f", driven by runner {flight.claimed_by}"
            if held_elsewhere(flight, engine.rt.runner, now)
            else ""
        )
        return now, f"{flight.kind} rotation {flight.id} in flight ({flight.state}{by})"
    if current is None:
        return None, (
            "not in the store: import it (`rotate credentials import`) or rotate it once "
            "(`rotate credentials rotate`) to start its cycle"
        )
    since = current.activated_at or current.created_at
    if done is not None and done.finished_at is not None:
        since = max(as_utc(since), as_utc(done.finished_at))
    return as_utc(since) + every(engine, name), f"every {_every_text(engine, name)}"


def _every_text(engine: Engine, name: str) -> str:
    return engine.rt.inventory.credentials[name].rotate_every or DEFAULT_EVERY


def run_due(engine: Engine) -> list[dict[str, Any]]:
    """Rotate (or resume) every own credential that is due now; return one line each."""
    from rotator.errors import RotatorError
    from rotator.own import google
    from rotator.own.cloudflare import emergency, rotate

    results = []
    for name in ROTATABLE:
        if name not in engine.rt.inventory.credentials:
            continue
        due, why = next_due(engine, name)
        if due is None or due > engine.rt.clock():
            continue
        with engine.rt.store.read() as s:
            flight = own.in_flight(s, name)
        try:
            if flight is not None and flight.kind == "emergency":
                # Resumed as an emergency, so the person is still told when it completes.
                finish = google.emergency if name == GOOGLE else emergency
                outcome = finish(engine, flight.reason)
            elif name == GOOGLE:
                outcome = google.rotate(engine, kind="scheduled")
            else:
                outcome = rotate(engine, kind="scheduled")
            results.append({"credential": name, "status": "done", "message": why, **outcome})
        except RotatorError as exc:
            results.append({"credential": name, "status": "retrying", "message": str(exc)})
    return results
