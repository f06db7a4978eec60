"""Say when each month of a cycle opens: local midnight on its first day, as a UTC instant."""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

from schedules.cycles import Cycle
from schedules.localtime import local_instant


def month_gate(cycle: Cycle, month: int, tz: ZoneInfo) -> datetime:
    """Return the UTC instant at which month `month` (1 to 4) of `cycle` opens in `tz`.

    Where a clock change skips local midnight, the month opens at the first instant that
    exists after it.
    """
    return local_instant(cycle.month_start(month), time(0, 0), tz)
