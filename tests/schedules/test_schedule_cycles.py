from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from schedules import (
    Cycle,
    check_start_months,
    current_cycle_start,
    cycle_for,
    cycles_in_year,
    cycles_open_at,
    parse_cycle_id,
)

LONDON = ZoneInfo("Europe/London")


def ids(cycles: list[Cycle]) -> list[str]:
    return [cycle.id for cycle in cycles]


def test_cycle_names_itself_and_its_months() -> None:
    cycle = cycle_for(date(2027, 1, 1))
    assert cycle.id == "2027-01"
    assert cycle.month_starts == (
        date(2027, 1, 1),
        date(2027, 2, 1),
        date(2027, 3, 1),
        date(2027, 4, 1),
    )
    assert cycle.month_start(3) == date(2027, 3, 1)
    assert cycle.end == date(2027, 5, 1)


def test_october_cycle_runs_into_january_of_the_next_year() -> None:
    cycle = cycle_for(date(2027, 10, 1))
    assert cycle.month_starts[3] == date(2028, 1, 1)
    assert cycle.end == date(2028, 2, 1)
    assert cycle.month_of(date(2028, 1, 31)) == 4
    assert cycle.month_of(date(2028, 2, 1)) is None
    assert cycle.month_of(date(2027, 9, 30)) is None
    assert cycle.month_of(date(2027, 11, 15)) == 2


def test_cycle_for_takes_any_day_of_the_start_month() -> None:
    assert cycle_for(date(2027, 7, 19)) == Cycle(date(2027, 7, 1))


def test_cycle_must_start_on_a_first_day() -> None:
    with pytest.raises(ValueError, match="first day of a month, not on 2027-01-02"):
        Cycle(date(2027, 1, 2))


@pytest.mark.parametrize("month", [0, 5, -1])
def test_month_start_refuses_months_outside_the_cycle(month: int) -> None:
    with pytest.raises(ValueError, match=f"month {month} of cycle 2027-01: expected 1, 2, 3 or 4"):
        cycle_for(date(2027, 1, 1)).month_start(month)


def test_cycles_sort_by_start() -> None:
    later, earlier = Cycle(date(2027, 4, 1)), Cycle(date(2026, 10, 1))
    assert sorted([later, earlier]) == [earlier, later]


def test_parse_cycle_id_round_trips() -> None:
    assert parse_cycle_id("2027-10") == Cycle(date(2027, 10, 1))
    assert parse_cycle_id("2027-10").id == "2027-10"


@pytest.mark.parametrize("text", ["2027-13", "2027-00", "2027-1", "27-01", "2027/01", ""])
def test_parse_cycle_id_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="expected YYYY-MM"):
        parse_cycle_id(text)


def test_cycles_in_year_default() -> None:
    assert ids(cycles_in_year(2027)) == ["2027-01", "2027-04", "2027-07", "2027-10"]


def test_cycles_in_year_other_start_months() -> None:
    assert ids(cycles_in_year(2027, (2, 5, 8, 11))) == ["2027-02", "2027-05", "2027-08", "2027-11"]
    assert ids(cycles_in_year(2027, [3, 9])) == ["2027-03", "2027-09"]


@pytest.mark.parametrize(
    ("months", "message"),
    [
        ([], r"quarter start months \[\]: expected at least one month from 1 to 12"),
        ([0, 4, 7, 10], r"\[0, 4, 7, 10\]: 0 is not a month, expected a number from 1 to 12"),
        ([1, 4, 7, 13], r"13 is not a month"),
        ([True, 4, 7, 10], r"True is not a month"),
        ([1, 4, 4, 10], r"\[4\] appear more than once, expected distinct months"),
        ([4, 1, 7, 10], r"expected them in ascending order, \[1, 4, 7, 10\]"),
        ([1, 3, 7, 10], r"1 and 3 are 2 month\(s\) apart.*at least 3 months apart"),
        ([1, 4, 7, 11], r"11 and 1 of the next year are 2 month\(s\) apart"),
    ],
)
def test_check_start_months_refuses_with_reason(months: list[int], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_start_months(months)


def test_check_start_months_accepts_sparse_starts() -> None:
    assert check_start_months([6]) == (6,)
    assert check_start_months([1, 7]) == (1, 7)
    assert check_start_months((3, 6, 9, 12)) == (3, 6, 9, 12)


def test_one_cycle_open_in_its_first_two_months() -> None:
    at = datetime(2027, 5, 15, 12, 0, tzinfo=UTC)
    assert ids(cycles_open_at(at, LONDON)) == ["2027-04"]


def test_two_cycles_open_in_the_overlap_month() -> None:
    at = datetime(2027, 4, 15, 12, 0, tzinfo=UTC)
    assert ids(cycles_open_at(at, LONDON)) == ["2027-01", "2027-04"]


def test_overlap_across_the_year_end() -> None:
    at = datetime(2028, 1, 10, tzinfo=UTC)
    assert ids(cycles_open_at(at, LONDON)) == ["2027-10", "2028-01"]


def test_open_cycles_use_local_time() -> None:
    # 23:30 UTC on 31 March is 00:30 BST on 1 April: the April cycle has opened in London
    # but not yet in UTC.
    at = datetime(2027, 3, 31, 23, 30, tzinfo=UTC)
    assert ids(cycles_open_at(at, LONDON)) == ["2027-01", "2027-04"]
    assert ids(cycles_open_at(at, ZoneInfo("UTC"))) == ["2027-01"]


def test_open_cycles_with_other_start_months() -> None:
    at = datetime(2027, 5, 20, tzinfo=UTC)
    assert ids(cycles_open_at(at, LONDON, (2, 5, 8, 11))) == ["2027-02", "2027-05"]
    # Starts six months apart leave months with no cycle open.
    assert cycles_open_at(datetime(2027, 5, 20, tzinfo=UTC), LONDON, (1, 7)) == []


def test_open_cycles_refuse_naive_instants() -> None:
    with pytest.raises(ValueError, match="has no time zone"):
        cycles_open_at(datetime(2027, 5, 20), LONDON)


def test_current_cycle_in_a_start_month_is_the_new_one() -> None:
    at = datetime(2027, 4, 1, 9, 0, tzinfo=UTC)
    assert current_cycle_start(at, LONDON).id == "2027-04"


def test_current_cycle_between_starts_is_the_latest_started() -> None:
    assert current_cycle_start(datetime(2027, 6, 30, tzinfo=UTC), LONDON).id == "2027-04"
    assert current_cycle_start(datetime(2027, 2, 1, tzinfo=UTC), LONDON, [10]).id == "2026-10"


def test_current_cycle_uses_local_time() -> None:
    # 31 December 23:30 in New York is already 1 January in UTC.
    new_york = ZoneInfo("America/New_York")
    at = datetime(2028, 1, 1, 4, 30, tzinfo=UTC)
    assert current_cycle_start(at, new_york).id == "2027-10"
    assert current_cycle_start(at, LONDON).id == "2028-01"
