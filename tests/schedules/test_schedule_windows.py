from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from schedules import MaintenanceWindow, parse_window, parse_zone

LONDON = ZoneInfo("Europe/London")


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def weekly(days: list[str], start: str, end: str) -> MaintenanceWindow:
    return parse_window(days, start, end, "Europe/London")


def test_parse_window() -> None:
    window = parse_window(["tue", "Wed", "THURSDAY"], "02:00", "4:30", "Europe/London")
    assert window == MaintenanceWindow(frozenset({1, 2, 3}), time(2, 0), time(4, 30), LONDON)
    assert window.length == timedelta(hours=2, minutes=30)
    assert not window.crosses_midnight
    assert window.describe() == "tue, wed, thu 02:00–04:30 Europe/London"


@pytest.mark.parametrize(
    ("days", "start", "end", "tz", "message"),
    [
        (["tue", "funday"], "02:00", "04:00", "Europe/London", "day 'funday' is not a weekday"),
        ([], "02:00", "04:00", "Europe/London", "days are empty"),
        ("tue", "02:00", "04:00", "Europe/London", "days 'tue' are not a list"),
        (["tue"], "25:00", "04:00", "Europe/London", "start '25:00' is not a time of day"),
        (["tue"], "02:00", "04:60", "Europe/London", "end '04:60' is not a time of day"),
        (["tue"], "2am", "04:00", "Europe/London", "start '2am' is not a time of day"),
        (["tue"], "02:00", "04:00", "Europe/Londres", "time zone 'Europe/Londres' is not known"),
        (["tue"], "02:00", "04:00", "../etc/passwd", "time zone '../etc/passwd' is not known"),
        (["tue"], "02:00", "02:00", "Europe/London", "start and end are both 02:00"),
    ],
)
def test_parse_window_names_the_bad_part(
    days: list[str], start: str, end: str, tz: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        parse_window(days, start, end, tz)


def test_window_refuses_days_out_of_range() -> None:
    with pytest.raises(ValueError, match=r"days \[1, 7\]: expected numbers 0 \(Monday\) to 6"):
        MaintenanceWindow(frozenset({1, 7}), time(2), time(4), LONDON)


def test_parse_zone() -> None:
    assert parse_zone("Europe/London") == LONDON


def test_contains_is_half_open() -> None:
    window = weekly(["tue"], "02:00", "04:00")  # 2027-03-02 is a Tuesday, GMT
    assert not window.contains(utc(2027, 3, 2, 1, 59, 59))
    assert window.contains(utc(2027, 3, 2, 2, 0))
    assert window.contains(utc(2027, 3, 2, 3, 59, 59))
    assert not window.contains(utc(2027, 3, 2, 4, 0))
    assert not window.contains(utc(2027, 3, 3, 2, 30))  # Wednesday


def test_contains_uses_local_time_in_summer() -> None:
    window = weekly(["tue"], "02:00", "04:00")  # 2027-06-01 is a Tuesday, BST
    assert window.contains(utc(2027, 6, 1, 1, 0))
    assert not window.contains(utc(2027, 6, 1, 3, 0))


def test_contains_accepts_any_aware_zone() -> None:
    window = weekly(["tue"], "02:00", "04:00")
    paris = ZoneInfo("Europe/Paris")
    assert window.contains(datetime(2027, 3, 2, 3, 30, tzinfo=paris))


def test_next_open_inside_a_window_returns_it() -> None:
    window = weekly(["tue", "thu"], "02:00", "04:00")
    assert window.next_open(utc(2027, 3, 2, 3, 0)) == (utc(2027, 3, 2, 2, 0), utc(2027, 3, 2, 4, 0))


def test_next_open_outside_returns_the_next_one() -> None:
    window = weekly(["tue", "thu"], "02:00", "04:00")
    assert window.next_open(utc(2027, 3, 2, 4, 0)) == (utc(2027, 3, 4, 2, 0), utc(2027, 3, 4, 4, 0))
    # From a Friday, the next is the following Tuesday.
    assert window.next_open(utc(2027, 3, 5, 12, 0)) == (
        utc(2027, 3, 9, 2, 0),
        utc(2027, 3, 9, 4, 0),
    )


def test_next_open_across_a_clock_change() -> None:
    window = weekly(["tue"], "02:00", "04:00")
    # Friday 2027-03-26 GMT; the next Tuesday is in BST.
    assert window.next_open(utc(2027, 3, 26, 12, 0)) == (
        utc(2027, 3, 30, 1, 0),
        utc(2027, 3, 30, 3, 0),
    )


def test_midnight_crossing_window_opens_on_the_listed_day() -> None:
    window = weekly(["sun"], "23:00", "01:00")  # 2027-03-07 is a Sunday
    assert window.crosses_midnight
    assert window.length == timedelta(hours=2)
    assert window.next_open(utc(2027, 3, 7, 12, 0)) == (
        utc(2027, 3, 7, 23, 0),
        utc(2027, 3, 8, 1, 0),
    )
    assert window.contains(utc(2027, 3, 8, 0, 30))  # Monday morning, still Sunday's window
    assert not window.contains(utc(2027, 3, 8, 23, 30))  # Monday night: not listed
    assert not window.contains(utc(2027, 3, 7, 0, 30))  # early Sunday: Saturday's, not listed


def test_windows_between_lists_openings_in_the_interval() -> None:
    window = weekly(["tue", "wed"], "02:00", "04:00")
    found = window.windows_between(utc(2027, 3, 2, 3, 0), utc(2027, 3, 10, 2, 0))
    # The Tuesday window opened before the start; the last Wednesday opens at the end.
    assert found == [
        (utc(2027, 3, 3, 2, 0), utc(2027, 3, 3, 4, 0)),
        (utc(2027, 3, 9, 2, 0), utc(2027, 3, 9, 4, 0)),
    ]


def test_windows_between_empty_and_reversed() -> None:
    window = weekly(["tue"], "02:00", "04:00")
    assert window.windows_between(utc(2027, 3, 3), utc(2027, 3, 3)) == []
    with pytest.raises(ValueError, match="the end is before the start"):
        window.windows_between(utc(2027, 3, 3), utc(2027, 3, 2))


def test_window_refuses_naive_instants() -> None:
    window = weekly(["tue"], "02:00", "04:00")
    with pytest.raises(ValueError, match="at 2027-03-02T03:00:00 has no time zone"):
        window.contains(datetime(2027, 3, 2, 3, 0))
    with pytest.raises(ValueError, match="has no time zone"):
        window.next_open(datetime(2027, 3, 2, 3, 0))


def test_window_opening_on_an_unlisted_day_is_none() -> None:
    assert weekly(["tue"], "02:00", "04:00").window_opening_on(date(2027, 3, 3)) is None


# London springs forward on 2027-03-28 at 01:00 GMT to 02:00 BST, and falls back on
# 2027-10-31 at 02:00 BST to 01:00 GMT (01:00Z both times).


def test_start_in_the_spring_gap_opens_at_the_end_of_the_gap() -> None:
    window = weekly(["sun"], "01:30", "03:00")
    # 01:30 never happens: the window opens at 02:00 BST and keeps its end, 03:00 BST.
    assert window.window_opening_on(date(2027, 3, 28)) == (
        utc(2027, 3, 28, 1, 0),
        utc(2027, 3, 28, 2, 0),
    )
    assert window.contains(utc(2027, 3, 28, 1, 0))
    assert not window.contains(utc(2027, 3, 28, 0, 59))


def test_end_in_the_spring_gap_closes_at_the_end_of_the_gap() -> None:
    window = weekly(["sun"], "00:30", "01:30")
    assert window.window_opening_on(date(2027, 3, 28)) == (
        utc(2027, 3, 28, 0, 30),
        utc(2027, 3, 28, 1, 0),
    )


def test_window_wholly_in_the_spring_gap_keeps_its_length() -> None:
    window = weekly(["sun"], "01:10", "01:50")
    assert window.window_opening_on(date(2027, 3, 28)) == (
        utc(2027, 3, 28, 1, 0),
        utc(2027, 3, 28, 1, 40),
    )


def test_window_over_the_repeated_hour_lasts_while_the_clock_reads_inside_it() -> None:
    window = weekly(["sun"], "01:00", "02:00")
    # Opens at the first 01:00 (BST) and closes at 02:00 GMT: two hours.
    assert window.window_opening_on(date(2027, 10, 31)) == (
        utc(2027, 10, 31, 0, 0),
        utc(2027, 10, 31, 2, 0),
    )
    assert window.contains(utc(2027, 10, 31, 1, 30))  # 01:30 GMT, the second showing


def test_ambiguous_end_picks_the_showing_that_keeps_the_intended_length() -> None:
    window = weekly(["sun"], "00:30", "01:30")
    # 01:30 shows twice; the first showing (BST) gives exactly the hour configured.
    assert window.window_opening_on(date(2027, 10, 31)) == (
        utc(2027, 10, 30, 23, 30),
        utc(2027, 10, 31, 0, 30),
    )


def test_window_inside_the_repeated_hour_uses_the_first_showing() -> None:
    window = weekly(["sun"], "01:10", "01:50")
    assert window.window_opening_on(date(2027, 10, 31)) == (
        utc(2027, 10, 31, 0, 10),
        utc(2027, 10, 31, 0, 50),
    )


def test_midnight_crossing_window_over_the_spring_change() -> None:
    window = weekly(["sat"], "23:00", "03:00")  # Saturday night into the short Sunday
    assert window.window_opening_on(date(2027, 3, 27)) == (
        utc(2027, 3, 27, 23, 0),
        utc(2027, 3, 28, 2, 0),
    )
