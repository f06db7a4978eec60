import schedules


def test_public_names_are_pinned() -> None:
    assert sorted(schedules.__all__) == [
        "CYCLE_MONTHS",
        "Cycle",
        "DEFAULT_START_MONTHS",
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
    for name in schedules.__all__:
        assert hasattr(schedules, name), name
