"""One validation of the schedule values: what the inventory accepts, the schedule can run.

Issue 12.7: `quarter_start_months = [1, 2]` passed `rotate check --offline` and then
`rotate plan` crashed (exit 70), because the inventory had checks of its own beside those
of `schedules/`. Here hypothesis writes settings and windows, valid and not: each is
either refused with the key path named, or every schedule function that `plan`,
`calendar` and `run` call works on it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from rotator import inventory as inv_mod
from rotator.errors import InventoryError
from schedules import (
    current_cycle_start,
    month_gate,
    parse_duration,
    parse_window,
    render_year,
)

MONTHS = st.lists(st.integers(-1, 14), min_size=0, max_size=6)
DURATIONS = st.one_of(
    st.sampled_from(["24h", "0s", "1d12h", "90s", "7d", "", "24", "h", "12h1d", " 3h", "2m3s"]),
    st.text(alphabet="0123456789dhms ", max_size=6),
)
CLOCKS = st.sampled_from(["02:00", "04:00", "23:30", "00:00", "24:00", "2:00", "02:60", "x"])
DAYS = st.lists(st.sampled_from(["mon", "tue", "wed", "thu", "fri", "sat", "sun", "tues"]))
ZONES = st.sampled_from(["Europe/London", "UTC", "America/New_York", "Mars/Base", ""])


def _inventory(settings_: dict[str, Any], window: dict[str, Any]) -> dict[str, Any]:
    return {
        "settings": settings_,
        "maintenance_window": window,
        "environments": {"staging": {"url": "https://staging.example", "targets": []}},
        "secrets": {},
    }


@settings(max_examples=300, deadline=None)
@given(
    months=MONTHS,
    soak=DURATIONS,
    monitoring=DURATIONS,
    span=DURATIONS,
    zone=ZONES,
    days=DAYS,
    start=CLOCKS,
    end=CLOCKS,
    at_days=st.integers(0, 800),
)
def test_accepted_schedules_run_and_refused_ones_name_their_key(
    months: list[int],
    soak: str,
    monitoring: str,
    span: str,
    zone: str,
    days: list[str],
    start: str,
    end: str,
    at_days: int,
) -> None:
    data = _inventory(
        {
            "time_zone": zone,
            "quarter_start_months": months,
            "soak": soak,
            "monitoring": monitoring,
            "health_span": span,
        },
        {"days": days, "start": start, "end": end},
    )
    try:
        inv = inv_mod.parse(data)
    except InventoryError as exc:
        text = "\n".join(exc.problems)
        assert any(key in text for key in ("settings.", "maintenance_window")), text
        return
    # Accepted: everything `plan`, `calendar` and `run` compute from it works.
    window = parse_window(
        list(inv.window.days),
        inv.window.start.strftime("%H:%M"),
        inv.window.end.strftime("%H:%M"),
        inv.time_zone,
    )
    for text in (inv.soak, inv.monitoring, inv.health_span):
        assert parse_duration(text) >= timedelta(0)
    at = datetime(2027, 1, 1, tzinfo=UTC) + timedelta(days=at_days)
    cycle = current_cycle_start(at, inv.tz, inv.quarter_start_months)
    gates = [month_gate(cycle, n, inv.tz) for n in (1, 2, 3, 4)]
    assert gates == sorted(gates)
    window.next_open(at)
    assert render_year(at.year, inv.quarter_start_months, inv.tz, window)
