from datetime import UTC, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from schedules import (
    CYCLE_MONTHS,
    MaintenanceWindow,
    check_start_months,
    current_cycle_start,
    cycles_in_year,
    cycles_open_at,
    format_duration,
    local_instant,
    month_gate,
    parse_duration,
)

# Zones with the awkward cases: an hour's change at 01:00 UTC (London), a change at local
# midnight (Santiago), a half-hour change (Lord Howe), odd offsets, and no change at all.
ZONES = [
    ZoneInfo(name)
    for name in (
        "Europe/London",
        "America/Santiago",
        "Australia/Lord_Howe",
        "America/New_York",
        "Pacific/Chatham",
        "Asia/Kolkata",
        "UTC",
    )
]
LARGEST_CLOCK_CHANGE = timedelta(hours=1)


def _clock_changes(tz: ZoneInfo, first_year: int, last_year: int) -> list[datetime]:
    """Return roughly (to the hour) when the clocks of `tz` change in the years given."""
    changes = []
    moment = datetime(first_year, 1, 1, tzinfo=UTC)
    offset = moment.astimezone(tz).utcoffset()
    while moment.year <= last_year:
        moment += timedelta(hours=1)
        now = moment.astimezone(tz).utcoffset()
        if now != offset:
            changes.append(moment)
            offset = now
    return changes


CHANGES = {tz.key: _clock_changes(tz, 2026, 2028) for tz in ZONES}

# Zone lookups are slow on first use; the clock-change cases need more than 100 draws.
schedule_settings = settings(deadline=None, max_examples=200)


@st.composite
def zone_and_instant(draw: st.DrawFn) -> tuple[ZoneInfo, datetime]:
    """Draw a zone and an instant, often within a few days of one of its clock changes."""
    tz = draw(st.sampled_from(ZONES))
    anywhere = st.datetimes(datetime(2026, 1, 1), datetime(2028, 12, 31), timezones=st.just(UTC))
    changes = CHANGES[tz.key]
    if not changes:
        return tz, draw(anywhere)
    near_change = st.builds(
        lambda change, minutes: change + timedelta(minutes=minutes),
        st.sampled_from(changes),
        st.integers(-3 * 24 * 60, 3 * 24 * 60),
    )
    return tz, draw(st.one_of(anywhere, near_change))


clock_times = st.builds(time, st.integers(0, 23), st.sampled_from([0, 1, 10, 30, 45, 59]))


@st.composite
def window_and_instant(draw: st.DrawFn) -> tuple[MaintenanceWindow, datetime]:
    tz, at = draw(zone_and_instant())
    start = draw(clock_times)
    end = draw(clock_times.filter(lambda t: t != start))
    days = draw(st.frozensets(st.integers(0, 6), min_size=1))
    return MaintenanceWindow(days, start, end, tz), at


valid_start_months = st.sampled_from(
    [(1, 4, 7, 10), (2, 5, 8, 11), (3, 6, 9, 12), (1, 7), (6,), (1, 5, 9), (2, 6, 10)]
)


@schedule_settings
@given(window_and_instant())
def test_contains_iff_inside_the_window_next_open_returns(
    case: tuple[MaintenanceWindow, datetime],
) -> None:
    window, at = case
    opens, closes = window.next_open(at)
    assert window.contains(at) == (opens <= at < closes)
    assert closes > at
    if not window.contains(at):
        assert opens > at


@schedule_settings
@given(window_and_instant())
def test_windows_are_ordered_disjoint_and_about_as_long_as_configured(
    case: tuple[MaintenanceWindow, datetime],
) -> None:
    window, at = case
    found = window.windows_between(at - timedelta(days=8), at + timedelta(days=8))
    # Sixteen days hold at least two of every listed weekday.
    assert len(found) >= 2 * len(window.days)
    for opens, closes in found:
        assert opens.tzinfo is UTC and closes.tzinfo is UTC
        assert closes > opens
        assert abs((closes - opens) - window.length) <= LARGEST_CLOCK_CHANGE
        assert opens.astimezone(window.tz).weekday() in window.days
    for (_, closes), (opens, _) in pairwise(found):
        assert closes <= opens


@schedule_settings
@given(window_and_instant())
def test_next_open_is_the_first_window_that_has_not_closed(
    case: tuple[MaintenanceWindow, datetime],
) -> None:
    window, at = case
    found = window.windows_between(at - timedelta(days=2), at + timedelta(days=9))
    assert window.next_open(at) == next(w for w in found if w[1] > at)


@schedule_settings
@given(zone_and_instant(), valid_start_months)
def test_gates_of_a_cycle_increase_and_read_local_midnight(
    case: tuple[ZoneInfo, datetime], start_months: tuple[int, ...]
) -> None:
    tz, at = case
    for cycle in cycles_in_year(at.year, start_months):
        gates = [month_gate(cycle, month, tz) for month in range(1, CYCLE_MONTHS + 1)]
        assert gates == sorted(set(gates))
        for gate, first_day in zip(gates, cycle.month_starts, strict=True):
            local = gate.astimezone(tz)
            assert local.date() == first_day
            # Midnight, or the end of a gap that swallowed it (Santiago).
            assert local.time() < time(2)


@schedule_settings
@given(zone_and_instant())
def test_every_instant_is_in_one_or_two_default_cycles(case: tuple[ZoneInfo, datetime]) -> None:
    tz, at = case
    open_now = cycles_open_at(at, tz)
    assert 1 <= len(open_now) <= 2
    if len(open_now) == 2:
        older, newer = open_now
        assert older.month_start(4) == newer.month_start(1)


@schedule_settings
@given(zone_and_instant(), valid_start_months)
def test_open_cycles_agree_with_their_gates(
    case: tuple[ZoneInfo, datetime], start_months: tuple[int, ...]
) -> None:
    tz, at = case
    open_now = cycles_open_at(at, tz, start_months)
    assert len(open_now) <= 2
    nearby = [
        c
        for year in (at.year - 1, at.year, at.year + 1)
        for c in cycles_in_year(year, start_months)
    ]
    for cycle in nearby:
        ends = local_instant(cycle.end, time(0), tz)
        assert (cycle in open_now) == (month_gate(cycle, 1, tz) <= at < ends)


@schedule_settings
@given(zone_and_instant(), valid_start_months)
def test_current_cycle_is_the_latest_started(
    case: tuple[ZoneInfo, datetime], start_months: tuple[int, ...]
) -> None:
    tz, at = case
    current = current_cycle_start(at, tz, start_months)
    assert month_gate(current, 1, tz) <= at
    later = [
        c
        for year in (at.year - 1, at.year, at.year + 1)
        for c in cycles_in_year(year, start_months)
        if c > current
    ]
    assert all(month_gate(c, 1, tz) > at for c in later)


@given(st.lists(st.integers(1, 12), min_size=1, max_size=6, unique=True).map(sorted))
def test_start_months_are_accepted_exactly_when_starts_are_three_months_apart(
    months: list[int],
) -> None:
    gaps = [b - a for a, b in zip(months, [*months[1:], months[0] + 12], strict=True)]
    try:
        check_start_months(months)
    except ValueError:
        assert min(gaps) < 3
    else:
        assert min(gaps) >= 3


@given(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=400)))
def test_durations_round_trip(duration: timedelta) -> None:
    whole = timedelta(seconds=int(duration.total_seconds()))
    assert parse_duration(format_duration(whole)) == whole


def test_clock_changes_are_found() -> None:
    # The strategies above lean on these; an empty list would quietly weaken them.
    assert datetime(2027, 3, 28, 1, 0, tzinfo=UTC) in CHANGES["Europe/London"]
    assert datetime(2027, 10, 31, 1, 0, tzinfo=UTC) in CHANGES["Europe/London"]
    assert len(CHANGES["Australia/Lord_Howe"]) == 6
    assert CHANGES["UTC"] == []
