"""Compute the calendar of rotations: quarterly cycles, month gates, maintenance windows, soak.

Pure functions of dates and time zones; nothing here reads a clock, a file or the network.
Instants go in and come out aware, in UTC; local time is used only to find them.
"""

from __future__ import annotations

from schedules.calendar import production_windows, render_year, year_as_dict
from schedules.cycles import (
    CYCLE_MONTHS,
    DEFAULT_START_MONTHS,
    Cycle,
    check_start_months,
    current_cycle_start,
    cycle_for,
    cycles_in_year,
    cycles_open_at,
    parse_cycle_id,
)
from schedules.durations import format_duration, parse_duration
from schedules.gates import month_gate
from schedules.localtime import local_instant
from schedules.soak import monitoring_over, soak_over
from schedules.windows import MaintenanceWindow, parse_window, parse_zone

__all__ = [
    "CYCLE_MONTHS",
    "DEFAULT_START_MONTHS",
    "Cycle",
    "MaintenanceWindow",
    "check_start_months",
    "current_cycle_start",
    "cycle_for",
    "cycles_in_year",
    "cycles_open_at",
    "format_duration",
    "local_instant",
    "monitoring_over",
    "month_gate",
    "parse_cycle_id",
    "parse_duration",
    "parse_window",
    "parse_zone",
    "production_windows",
    "render_year",
    "soak_over",
    "year_as_dict",
]
