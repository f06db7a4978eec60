from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from schedules import cycle_for, local_instant, month_gate
from schedules.localtime import require_aware

LONDON = ZoneInfo("Europe/London")


def test_gate_in_winter_is_midnight_utc() -> None:
    cycle = cycle_for(date(2027, 1, 1))
    assert month_gate(cycle, 1, LONDON) == datetime(2027, 1, 1, 0, 0, tzinfo=UTC)


def test_gate_in_summer_time_is_an_hour_before_midnight_utc() -> None:
    cycle = cycle_for(date(2027, 1, 1))
    assert month_gate(cycle, 4, LONDON) == datetime(2027, 3, 31, 23, 0, tzinfo=UTC)


def test_all_gates_of_the_october_cycle() -> None:
    cycle = cycle_for(date(2027, 10, 1))
    gates = [month_gate(cycle, month, LONDON) for month in (1, 2, 3, 4)]
    assert gates == [
        datetime(2027, 9, 30, 23, 0, tzinfo=UTC),
        datetime(2027, 11, 1, 0, 0, tzinfo=UTC),
        datetime(2027, 12, 1, 0, 0, tzinfo=UTC),
        datetime(2028, 1, 1, 0, 0, tzinfo=UTC),
    ]


def test_gate_is_utc_aware() -> None:
    gate = month_gate(cycle_for(date(2027, 7, 1)), 2, ZoneInfo("Australia/Sydney"))
    assert gate == datetime(2027, 7, 31, 14, 0, tzinfo=UTC)
    assert gate.tzinfo is UTC


def test_gate_refuses_month_five() -> None:
    with pytest.raises(ValueError, match="expected 1, 2, 3 or 4"):
        month_gate(cycle_for(date(2027, 1, 1)), 5, LONDON)


def test_gate_when_the_clocks_skip_midnight() -> None:
    # Santiago springs from 24:00 to 01:00 on the first Sunday of September (2024-09-08),
    # so a cycle starting there opens at the first instant that exists: 01:00 -03.
    santiago = ZoneInfo("America/Santiago")
    assert local_instant(date(2024, 9, 8), datetime.min.time(), santiago) == datetime(
        2024, 9, 8, 4, 0, tzinfo=UTC
    )


def test_local_instant_in_the_spring_gap_is_the_end_of_the_gap() -> None:
    instant = local_instant(date(2027, 3, 28), datetime(1, 1, 1, 1, 30).time(), LONDON)
    assert instant == datetime(2027, 3, 28, 1, 0, tzinfo=UTC)


def test_local_instant_in_the_autumn_repeat_follows_fold() -> None:
    clock = datetime(1, 1, 1, 1, 30).time()
    first = local_instant(date(2027, 10, 31), clock, LONDON)
    second = local_instant(date(2027, 10, 31), clock, LONDON, fold=1)
    assert first == datetime(2027, 10, 31, 0, 30, tzinfo=UTC)
    assert second == datetime(2027, 10, 31, 1, 30, tzinfo=UTC)


def test_require_aware_names_the_value() -> None:
    with pytest.raises(ValueError, match="when 2027-01-01T00:00:00 has no time zone"):
        require_aware(datetime(2027, 1, 1), "when")
