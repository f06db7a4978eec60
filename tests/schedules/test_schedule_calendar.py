import json
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from schedules import cycle_for, parse_window, production_windows, render_year, year_as_dict

LONDON = ZoneInfo("Europe/London")
WINDOW = parse_window(["tue", "wed", "thu"], "02:00", "04:00", "Europe/London")


def test_production_windows_fall_in_month_three() -> None:
    windows = production_windows(cycle_for(date(2027, 1, 1)), LONDON, WINDOW)
    assert len(windows) == 14
    assert windows[0] == (
        datetime(2027, 3, 2, 2, 0, tzinfo=UTC),
        datetime(2027, 3, 2, 4, 0, tzinfo=UTC),
    )
    # 31 March is in BST.
    assert windows[-1] == (
        datetime(2027, 3, 31, 1, 0, tzinfo=UTC),
        datetime(2027, 3, 31, 3, 0, tzinfo=UTC),
    )


def test_render_year_shows_cycles_gates_and_windows() -> None:
    text = render_year(2027, (1, 4, 7, 10), LONDON, WINDOW)
    lines = text.splitlines()
    assert lines[0] == "Quarterly cycles starting in 2027 (times in Europe/London)"
    assert lines[1] == "Maintenance window: tue, wed, thu 02:00–04:00 Europe/London"
    assert [line for line in lines if line.startswith("Cycle ")] == [
        "Cycle 2027-01",
        "Cycle 2027-04",
        "Cycle 2027-07",
        "Cycle 2027-10",
    ]
    assert "  month 4  2027-04-01 00:00 BST  revoke, review" in lines
    assert "  month 4  2028-01-01 00:00 GMT  revoke, review" in lines
    assert "  month 1  2027-01-01 00:00 GMT  plan, generate, stage" in lines
    assert "    Tue 2027-03-02 02:00–04:00 GMT" in lines
    assert "    Wed 2027-03-31 02:00–04:00 BST" in lines
    assert text.count("production windows in month 3 (14):") == 4


def test_render_year_marks_windows_that_close_the_next_day_and_clock_changes() -> None:
    night = parse_window(["sun"], "01:00", "02:00", "Europe/London")
    text = render_year(2027, [10], LONDON, night)
    assert "    Sun 2027-12-05 01:00–02:00 GMT" in text.splitlines()
    late = parse_window(["sun"], "23:00", "01:00", "Europe/London")
    assert "    Sun 2027-12-05 23:00–01:00 GMT (next day)" in render_year(2027, [10], LONDON, late)


def test_render_year_names_both_zones_across_a_change() -> None:
    night = parse_window(["sun"], "01:00", "02:00", "Europe/London")
    # An August start puts month 3 in October, when London falls back on the 31st.
    text = render_year(2027, [8], LONDON, night)
    assert "    Sun 2027-10-31 01:00 BST–02:00 GMT" in text.splitlines()


def test_render_year_without_a_window() -> None:
    text = render_year(2027, [1], LONDON, None)
    assert "No maintenance window configured." in text
    assert "production windows" not in text


def test_year_as_dict_is_json_with_iso_strings() -> None:
    data = year_as_dict(2027, (1, 4, 7, 10), LONDON, WINDOW)
    assert json.loads(json.dumps(data)) == data
    assert data["year"] == 2027
    assert data["time_zone"] == "Europe/London"
    assert data["start_months"] == [1, 4, 7, 10]
    assert data["maintenance_window"] == {
        "days": ["tue", "wed", "thu"],
        "start": "02:00",
        "end": "04:00",
        "time_zone": "Europe/London",
    }
    first = data["cycles"][0]
    assert first["id"] == "2027-01"
    assert first["months"][3] == {
        "month": 4,
        "first_day": "2027-04-01",
        "opens": "2027-03-31T23:00:00+00:00",
        "opens_local": "2027-04-01T00:00:00+01:00",
        "steps": ["revoke", "review"],
    }
    assert first["production_windows"][0] == {
        "opens": "2027-03-02T02:00:00+00:00",
        "closes": "2027-03-02T04:00:00+00:00",
        "opens_local": "2027-03-02T02:00:00+00:00",
        "closes_local": "2027-03-02T04:00:00+00:00",
    }
    assert data["cycles"][3]["months"][3]["first_day"] == "2028-01-01"


def test_year_as_dict_without_a_window() -> None:
    data = year_as_dict(2027, [1], LONDON, None)
    assert data["maintenance_window"] is None
    assert "production_windows" not in data["cycles"][0]
