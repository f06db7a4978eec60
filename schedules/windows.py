"""Say when production promotions are allowed: weekly maintenance windows in a time zone.

A window opens on each listed weekday at its start time, local in its zone, and closes at
its end time the same day, or the next day when the end is not after the start. On the
nights the clocks change, the wall-clock times are resolved as follows:

* a start the clocks skip (01:30 when London springs from 01:00 to 02:00) opens the window
  at the first instant after the gap, so the window is shorter by the skipped part;
* a start the clocks show twice (01:30 when London falls back from 02:00 to 01:00) opens
  it at the first showing;
* an end the clocks show twice closes it at the showing that makes the window longest
  without being longer than its length on the wall clock, or failing that the first
  showing after the start; an end the clocks skip closes it at the end of the gap;
* a window wholly inside a gap still happens: it opens at the end of the gap and lasts
  its length on the wall clock, so no listed day is without its window.

A window that spans the repeated hour therefore lasts one hour longer than the wall clock
suggests (01:00 to 02:00 on the night London falls back is two hours long), because the
clocks read inside it for that long; windows never overlap and never have zero length.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from schedules.localtime import local_instant, require_aware

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_CLOCK = re.compile(r"(\d{1,2}):(\d{2})")
_DAY = timedelta(days=1)
# A window opens on one local day and closes by the next; two days back covers a window
# that opened the day before yesterday and was stretched by a clock change.
_LOOKBACK_DAYS = 2


@dataclass(frozen=True)
class MaintenanceWindow:
    """A weekly window, opening on `days` (0 is Monday) from `start` to `end` local in `tz`."""

    days: frozenset[int]
    start: time
    end: time
    tz: ZoneInfo

    def __post_init__(self) -> None:
        if not self.days:
            raise ValueError("maintenance window days are empty: expected at least one weekday")
        if not self.days <= frozenset(range(7)):
            raise ValueError(
                f"maintenance window days {sorted(self.days)}: expected numbers 0 (Monday) to 6"
            )
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("maintenance window times are local to its zone: give them no tzinfo")
        if self.start == self.end:
            raise ValueError(
                f"maintenance window start and end are both {self.start:%H:%M}: "
                "expected a window of some length (an end before the start crosses midnight)"
            )

    @property
    def crosses_midnight(self) -> bool:
        """Return whether the window closes on the day after it opens."""
        return self.end < self.start

    @property
    def length(self) -> timedelta:
        """Return the window's length on the wall clock, as on a night without a clock change."""
        on_a_day = date(2000, 1, 1)
        length = datetime.combine(on_a_day, self.end) - datetime.combine(on_a_day, self.start)
        return length + _DAY if self.crosses_midnight else length

    def describe(self) -> str:
        """Return the window as people write it, such as "tue, wed 02:00–04:00 Europe/London"."""
        days = ", ".join(DAY_NAMES[d] for d in sorted(self.days))
        return f"{days} {self.start:%H:%M}–{self.end:%H:%M} {self.tz.key}"

    def contains(self, at: datetime) -> bool:
        """Return whether a window is open at `at` (from its opening, up to its closing)."""
        require_aware(at, "at")
        first = at.astimezone(self.tz).date() - _LOOKBACK_DAYS * _DAY
        for opens, closes in self._windows_from(first):
            if opens > at:
                return False
            if at < closes:
                return True
        raise AssertionError("unreachable: windows go on forever")  # pragma: no cover

    def next_open(self, at: datetime) -> tuple[datetime, datetime]:
        """Return the opening and closing instants, in UTC, of the window open at `at` or next."""
        require_aware(at, "at")
        first = at.astimezone(self.tz).date() - _LOOKBACK_DAYS * _DAY
        return next(window for window in self._windows_from(first) if window[1] > at)

    def windows_between(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        """Return the windows, in UTC and in order, that open in [`start`, `end`)."""
        require_aware(start, "start")
        require_aware(end, "end")
        if end < start:
            raise ValueError(
                f"windows from {start.isoformat()} to {end.isoformat()}: "
                "the end is before the start"
            )
        first = start.astimezone(self.tz).date() - _LOOKBACK_DAYS * _DAY
        found: list[tuple[datetime, datetime]] = []
        for opens, closes in self._windows_from(first):
            if opens >= end:
                return found
            if opens >= start:
                found.append((opens, closes))
        raise AssertionError("unreachable: windows go on forever")  # pragma: no cover

    def window_opening_on(self, day: date) -> tuple[datetime, datetime] | None:
        """Return the window that opens on local date `day`, in UTC, or None if it is not listed."""
        if day.weekday() not in self.days:
            return None
        opens = local_instant(day, self.start, self.tz)
        return opens, self._closing(day, opens)

    def _closing(self, day: date, opens: datetime) -> datetime:
        """Return when the window that opened at `opens` on `day` closes (see module docstring)."""
        closing_day = day + _DAY if self.crosses_midnight else day
        showings = sorted({local_instant(closing_day, self.end, self.tz, fold=f) for f in (0, 1)})
        after_opening = [s for s in showings if s > opens]
        not_too_long = [s for s in after_opening if s - opens <= self.length]
        if not_too_long:
            return not_too_long[-1]
        if after_opening:
            return after_opening[0]
        return opens + self.length

    def _windows_from(self, day: date) -> Iterator[tuple[datetime, datetime]]:
        """Yield the windows opening on `day` and every later day, in order."""
        while True:
            window = self.window_opening_on(day)
            if window is not None:
                yield window
            day += _DAY


def _parse_day(name: object) -> int:
    if isinstance(name, str):
        key = name.strip().lower()
        if key in DAY_NAMES:
            return DAY_NAMES.index(key)
        if key in _FULL_DAY_NAMES:
            return _FULL_DAY_NAMES.index(key)
    raise ValueError(
        f"maintenance window day {name!r} is not a weekday: expected one of {', '.join(DAY_NAMES)}"
    )


def _parse_clock(text: object, which: str) -> time:
    match = _CLOCK.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        raise ValueError(
            f"maintenance window {which} {text!r} is not a time of day: "
            "expected HH:MM on the 24-hour clock, such as '02:00'"
        )
    return time(int(match.group(1)), int(match.group(2)))


def parse_zone(name: str) -> ZoneInfo:
    """Return the IANA time zone named `name`, such as "Europe/London"."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(
            f"time zone {name!r} is not known: expected an IANA name such as 'Europe/London'"
        ) from None


def parse_window(days: Sequence[str], start: str, end: str, tz: str) -> MaintenanceWindow:
    """Return the maintenance window of the inventory, or raise ValueError naming the bad part."""
    if isinstance(days, str) or not isinstance(days, Sequence):
        raise ValueError(
            f"maintenance window days {days!r} are not a list: "
            "expected weekdays such as ['tue', 'wed']"
        )
    if not days:
        raise ValueError(
            "maintenance window days are empty: expected weekdays such as ['tue', 'wed']"
        )
    return MaintenanceWindow(
        days=frozenset(_parse_day(day) for day in days),
        start=_parse_clock(start, "start"),
        end=_parse_clock(end, "end"),
        tz=parse_zone(tz),
    )
