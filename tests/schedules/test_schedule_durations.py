from datetime import UTC, datetime, timedelta, timezone

import pytest

from schedules import format_duration, monitoring_over, parse_duration, soak_over


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("24h", timedelta(hours=24)),
        ("30m", timedelta(minutes=30)),
        ("7d", timedelta(days=7)),
        ("90s", timedelta(seconds=90)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("1h30m15s", timedelta(hours=1, minutes=30, seconds=15)),
        (" 24h ", timedelta(hours=24)),
        ("0s", timedelta(0)),
    ],
)
def test_parse_duration_reads_units(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text", ["", "  ", "24", "h", "24x", "1.5h", "-1h", "12h1d", "1h1h", "1 h"]
)
def test_parse_duration_refuses_with_what_was_found_and_expected(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration(text)
    message = str(caught.value)
    assert repr(text) in message
    assert "'24h'" in message
    assert "largest unit first" in message


def test_parse_duration_refuses_a_number() -> None:
    with pytest.raises(ValueError, match=r"duration 24 is a int"):
        parse_duration(24)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("duration", "text"),
    [
        (timedelta(hours=24), "1d"),
        (timedelta(days=1, hours=12), "1d12h"),
        (timedelta(minutes=90), "1h30m"),
        (timedelta(seconds=59), "59s"),
        (timedelta(0), "0s"),
    ],
)
def test_format_duration(duration: timedelta, text: str) -> None:
    assert format_duration(duration) == text


def test_format_duration_refuses_negative() -> None:
    with pytest.raises(ValueError, match="negative"):
        format_duration(timedelta(seconds=-1))


def test_soak_over_adds_the_soak_and_answers_in_utc() -> None:
    staged = datetime(2027, 1, 5, 10, 0, tzinfo=timezone(timedelta(hours=1)))
    assert soak_over(staged, timedelta(hours=24)) == datetime(2027, 1, 6, 9, 0, tzinfo=UTC)
    assert soak_over(staged, timedelta(hours=24)).tzinfo is UTC


def test_monitoring_over_adds_the_monitoring_period() -> None:
    promoted = datetime(2027, 3, 2, 2, 15, tzinfo=UTC)
    assert monitoring_over(promoted, parse_duration("24h")) == datetime(
        2027, 3, 3, 2, 15, tzinfo=UTC
    )


def test_soak_over_refuses_naive_instants() -> None:
    with pytest.raises(ValueError, match="staged_at 2027-01-05T10:00:00 has no time zone"):
        soak_over(datetime(2027, 1, 5, 10, 0), timedelta(hours=1))
