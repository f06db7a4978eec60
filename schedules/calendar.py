"""Show a year of quarterly cycles, for `rotate calendar`: gates and production windows."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from schedules.cycles import Cycle, check_start_months, cycles_in_year
from schedules.gates import month_gate
from schedules.windows import DAY_NAMES, MaintenanceWindow

# For display only: the machine owns the sequence; this mirrors DESIGN.md §3 so a reader
# of the calendar knows what each gate lets through.
STEPS_BY_MONTH: dict[int, tuple[str, ...]] = {
    1: ("plan", "generate", "stage"),
    2: ("validate",),
    3: ("promote", "monitor"),
    4: ("revoke", "review"),
}
PROMOTE_MONTH = 3


def production_windows(
    cycle: Cycle, tz: ZoneInfo, window: MaintenanceWindow
) -> list[tuple[datetime, datetime]]:
    """Return the maintenance windows, in UTC, that open during month 3 of `cycle`."""
    return window.windows_between(
        month_gate(cycle, PROMOTE_MONTH, tz), month_gate(cycle, PROMOTE_MONTH + 1, tz)
    )


def _local_span(opens: datetime, closes: datetime, tz: ZoneInfo) -> str:
    """Return a window as "Tue 2027-03-02 02:00–04:00 GMT", naming each zone only once."""
    start, end = opens.astimezone(tz), closes.astimezone(tz)
    if start.tzname() == end.tzname():
        span = f"{start:%H:%M}–{end:%H:%M} {end:%Z}"
    else:
        span = f"{start:%H:%M %Z}–{end:%H:%M %Z}"
    next_day = " (next day)" if end.date() != start.date() else ""
    return f"{start:%a %Y-%m-%d} {span}{next_day}"


def render_year(
    year: int,
    start_months: Iterable[int],
    tz: ZoneInfo,
    window: MaintenanceWindow | None,
) -> str:
    """Return the cycles starting in `year` as plain text, with gates in local time."""
    lines = [f"Quarterly cycles starting in {year} (times in {tz.key})"]
    if window is None:
        lines.append("No maintenance window configured.")
    else:
        lines.append(f"Maintenance window: {window.describe()}")
    for cycle in cycles_in_year(year, start_months):
        lines += ["", f"Cycle {cycle.id}"]
        for month, steps in STEPS_BY_MONTH.items():
            gate = month_gate(cycle, month, tz).astimezone(tz)
            lines.append(f"  month {month}  {gate:%Y-%m-%d %H:%M %Z}  {', '.join(steps)}")
        if window is not None:
            windows = production_windows(cycle, tz, window)
            lines.append(f"  production windows in month {PROMOTE_MONTH} ({len(windows)}):")
            lines += [f"    {_local_span(opens, closes, tz)}" for opens, closes in windows]
    return "\n".join(lines) + "\n"


def year_as_dict(
    year: int,
    start_months: Iterable[int],
    tz: ZoneInfo,
    window: MaintenanceWindow | None,
) -> dict[str, Any]:
    """Return the cycles starting in `year` as JSON-ready data, instants as ISO 8601 strings."""
    months = check_start_months(start_months)
    cycles = []
    for cycle in cycles_in_year(year, months):
        gates = []
        for month, steps in STEPS_BY_MONTH.items():
            gate = month_gate(cycle, month, tz)
            gates.append(
                {
                    "month": month,
                    "first_day": cycle.month_start(month).isoformat(),
                    "opens": gate.isoformat(),
                    "opens_local": gate.astimezone(tz).isoformat(),
                    "steps": list(steps),
                }
            )
        entry: dict[str, Any] = {"id": cycle.id, "months": gates}
        if window is not None:
            entry["production_windows"] = [
                {
                    "opens": opens.isoformat(),
                    "closes": closes.isoformat(),
                    "opens_local": opens.astimezone(tz).isoformat(),
                    "closes_local": closes.astimezone(tz).isoformat(),
                }
                for opens, closes in production_windows(cycle, tz, window)
            ]
        cycles.append(entry)
    return {
        "year": year,
        "time_zone": tz.key,
        "start_months": list(months),
        "maintenance_window": None if window is None else _window_as_dict(window),
        "cycles": cycles,
    }


def _window_as_dict(window: MaintenanceWindow) -> dict[str, Any]:
    return {
        "days": [DAY_NAMES[d] for d in sorted(window.days)],
        "start": f"{window.start:%H:%M}",
        "end": f"{window.end:%H:%M}",
        "time_zone": window.tz.key,
    }
