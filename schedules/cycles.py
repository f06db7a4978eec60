"""Lay out the quarterly cycles: each starts on a configured month and runs four months.

Month 4 of one cycle is month 1 of the next (with the default starts), so two cycles are
open at once for one month: the old one revokes while the new one generates.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from schedules.localtime import require_aware

DEFAULT_START_MONTHS: tuple[int, ...] = (1, 4, 7, 10)
CYCLE_MONTHS = 4
# Starts closer than this would open three cycles at once, and with them a third live
# credential; further apart is allowed and leaves months in which no cycle is open.
MIN_MONTHS_BETWEEN_STARTS = CYCLE_MONTHS - 1

_CYCLE_ID = re.compile(r"(\d{4})-(\d{2})")


def _shift_months(first: date, months: int) -> date:
    """Return the first day of the month `months` after the month of `first`."""
    index = first.year * 12 + first.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


@dataclass(frozen=True, order=True)
class Cycle:
    """One quarterly cycle of a secret, named by the month it starts in."""

    start_month: date

    def __post_init__(self) -> None:
        if self.start_month.day != 1:
            raise ValueError(
                f"a cycle starts on the first day of a month, not on {self.start_month.isoformat()}"
            )

    @property
    def id(self) -> str:
        """Return the cycle's name, the year and month it starts in, such as "2027-01"."""
        return f"{self.start_month.year:04d}-{self.start_month.month:02d}"

    @property
    def month_starts(self) -> tuple[date, date, date, date]:
        """Return the first days of months 1 to 4 of the cycle."""
        first = self.start_month
        return (first, _shift_months(first, 1), _shift_months(first, 2), _shift_months(first, 3))

    def month_start(self, month: int) -> date:
        """Return the first day of month `month` (1 to 4) of the cycle."""
        if not isinstance(month, int) or not 1 <= month <= CYCLE_MONTHS:
            raise ValueError(f"month {month!r} of cycle {self.id}: expected 1, 2, 3 or 4")
        return self.month_starts[month - 1]

    @property
    def end(self) -> date:
        """Return the first day after month 4, where the cycle no longer holds."""
        return _shift_months(self.start_month, CYCLE_MONTHS)

    def month_of(self, day: date) -> int | None:
        """Return which month (1 to 4) of the cycle `day` falls in, or None if outside it."""
        offset = (day.year - self.start_month.year) * 12 + day.month - self.start_month.month
        return offset + 1 if 0 <= offset < CYCLE_MONTHS else None


def check_start_months(start_months: Iterable[int]) -> tuple[int, ...]:
    """Return `start_months` as a tuple, or raise ValueError naming what is wrong with them."""
    months = tuple(start_months)
    shown = list(months)
    prefix = f"quarter start months {shown}"
    if not months:
        raise ValueError(
            f"{prefix}: expected at least one month from 1 to 12, such as [1, 4, 7, 10]"
        )
    for month in months:
        # bool is an int subclass; True would otherwise pass as January.
        if not isinstance(month, int) or isinstance(month, bool) or not 1 <= month <= 12:
            raise ValueError(f"{prefix}: {month!r} is not a month, expected a number from 1 to 12")
    if len(set(months)) != len(months):
        repeated = sorted({m for m in months if months.count(m) > 1})
        raise ValueError(f"{prefix}: {repeated} appear more than once, expected distinct months")
    if list(months) != sorted(months):
        raise ValueError(f"{prefix}: expected them in ascending order, {sorted(months)}")
    following = (*months[1:], months[0] + 12)
    for month, after in zip(months, following, strict=True):
        if after - month < MIN_MONTHS_BETWEEN_STARTS:
            later = f"{after} " if after <= 12 else f"{after - 12} of the next year "
            raise ValueError(
                f"{prefix}: {month} and {later}are {after - month} month(s) apart; a cycle "
                f"lasts {CYCLE_MONTHS} months and may overlap the next by one month only, "
                f"so starts must be at least {MIN_MONTHS_BETWEEN_STARTS} months apart"
            )
    return months


def cycle_for(start_month: date) -> Cycle:
    """Return the cycle that starts in the month of `start_month` (any day of it)."""
    return Cycle(start_month.replace(day=1))


def parse_cycle_id(cycle_id: str) -> Cycle:
    """Return the cycle named `cycle_id`, such as "2027-01"."""
    match = _CYCLE_ID.fullmatch(cycle_id)
    if match is None or not 1 <= int(match.group(2)) <= 12:
        raise ValueError(
            f"cycle id {cycle_id!r} is not understood: expected YYYY-MM, such as '2027-01'"
        )
    return Cycle(date(int(match.group(1)), int(match.group(2)), 1))


def cycles_in_year(year: int, start_months: Iterable[int] = DEFAULT_START_MONTHS) -> list[Cycle]:
    """Return the cycles that start in `year`, in order."""
    return [Cycle(date(year, month, 1)) for month in check_start_months(start_months)]


def _local_month_index(at: datetime, tz: ZoneInfo) -> int:
    """Return the month `at` falls in, locally in `tz`, counted from year 0."""
    require_aware(at, "at")
    local = at.astimezone(tz)
    return local.year * 12 + local.month - 1


def _cycle_at_index(index: int) -> Cycle:
    return Cycle(date(index // 12, index % 12 + 1, 1))


def cycles_open_at(
    at: datetime, tz: ZoneInfo, start_months: Iterable[int] = DEFAULT_START_MONTHS
) -> list[Cycle]:
    """Return the cycles whose four months contain `at` in local time, oldest first."""
    months = check_start_months(start_months)
    now = _local_month_index(at, tz)
    return [
        _cycle_at_index(now - back)
        for back in range(CYCLE_MONTHS - 1, -1, -1)
        if (now - back) % 12 + 1 in months
    ]


def current_cycle_start(
    at: datetime, tz: ZoneInfo, start_months: Iterable[int] = DEFAULT_START_MONTHS
) -> Cycle:
    """Return the latest cycle started by `at` in local time (whose month 1 holds `at`, if any)."""
    months = check_start_months(start_months)
    now = _local_month_index(at, tz)
    back = next(back for back in range(12) if (now - back) % 12 + 1 in months)
    return _cycle_at_index(now - back)
