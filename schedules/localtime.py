"""Turn a wall-clock reading in a time zone into one UTC instant, across clock changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo


def require_aware(value: datetime, name: str) -> None:
    """Refuse a naive datetime, whose meaning would depend on the host's time zone."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} {value.isoformat()} has no time zone: expected an aware datetime")


def local_instant(day: date, clock: time, tz: ZoneInfo, *, fold: int = 0) -> datetime:
    """Return the UTC instant at which the wall clock in `tz` reads `clock` on `day`.

    A reading skipped by a clock change (01:30 when clocks spring from 01:00 to 02:00)
    maps to the first instant after the gap; a reading that occurs twice (when clocks fall
    back) maps to its first occurrence with `fold=0` and its second with `fold=1`.
    """
    wall = datetime.combine(day, clock.replace(tzinfo=None), tzinfo=tz).replace(fold=fold)
    instant = wall.astimezone(UTC)
    if instant.astimezone(tz).replace(tzinfo=None) == wall.replace(tzinfo=None):
        return instant
    return _end_of_gap(wall, tz)


def _end_of_gap(wall: datetime, tz: ZoneInfo) -> datetime:
    """Return the instant a clock change skipped over `wall` by searching between its readings."""
    # Inside a gap the two folds use the offsets from either side of the change, so the
    # change itself lies between them; it falls on a whole second in every tz database zone.
    readings = sorted(wall.replace(fold=f).astimezone(UTC) for f in (0, 1))
    low, high = (int(r.timestamp()) for r in readings)
    offset_after = datetime.fromtimestamp(high, tz).utcoffset()
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, tz).utcoffset() == offset_after:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)
