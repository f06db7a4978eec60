"""Tell the time from one place, aware and in UTC, so tests and the demo can move it.

Tests move it with freezegun; the demo, which walks a simulated year against a live
sandbox, installs its own source with `simulated()`. Everything that needs the time
calls `now()`, so both reach every module.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

_source: Callable[[], datetime] | None = None


def now() -> datetime:
    """Return the current time, aware, in UTC."""
    if _source is not None:
        return _source()
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
