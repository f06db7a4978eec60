"""Tell the time from one place, aware and in UTC, so tests and the demo can move it.

Tests move it with freezegun; the demo, which walks a simulated year against a live
sandbox, installs its own source with `simulated()`. Everything that needs the time
calls `now()`, so both reach every module.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

_source: Callable[[], datetime] | None = None

FAKE_TIME_ENV = "ROTATOR_FAKE_TIME"
"""For end-to-end tests that run `rotate` as a subprocess against the sandbox: the process
starts at this ISO time and its clock runs on from there. Every audit event still carries
the time the tool believed, so a run under it cannot pass for a real one unnoticed."""

_started = time.monotonic()


def _fake_start() -> datetime | None:
    text = os.environ.get(FAKE_TIME_ENV)
    if not text:
        return None
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def now() -> datetime:
    """Return the current time, aware, in UTC."""
    if _source is not None:
        return _source()
    fake = _fake_start()
    if fake is not None:
        return (fake + timedelta(seconds=time.monotonic() - _started)).astimezone(UTC)
    return datetime.now(UTC)


@contextmanager
def simulated(source: Callable[[], datetime]) -> Iterator[None]:
    """Let `source` tell the time inside the block (the demo's simulated clock)."""
    global _source
    previous, _source = _source, source
    try:
        yield
    finally:
        _source = previous


def as_utc(value: datetime) -> datetime:
    """Return `value` in UTC; a naive value is taken to be UTC (as stored by SQLite)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
