"""Run each benchmark once at a tiny size, so `python -m bench` keeps working."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench import emergency, tick, trail
from bench.common import ROTATE, Section
from bench.report import machine, render


@pytest.fixture(autouse=True)
def _isolated(state_dir: Path) -> None:
    """Each bench makes its own state directory; this keeps the user's untouched."""


def _check(section: Section) -> None:
    assert section.rows, section.title
    assert all(row.verdict != "FAIL" or row.figure for row in section.rows)


def test_tick_runs_at_tiny_size() -> None:
    section = tick.run(sizes=(20,), runs=1, history=1, audit_events=50, cli_size=0)
    _check(section)
    assert section.raw["20"]["due_n"] >= 1


def test_audit_bench_runs_at_tiny_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trail, "PG_ADMIN", "postgresql://postgres@127.0.0.1:1/none")
    # The demo's year (15 s) gives the engine's transaction sizes in `make bench`.
    monkeypatch.setattr(trail, "engine_transaction_sizes", lambda: [2, 3, 1, 15])
    section = trail.run(events=20, verify_sizes=(100, 200))
    _check(section)
    assert section.raw["verify_200"]["code"] == 0
    assert section.raw["sqlite_engine_grouped"]["rate"] > 0


def test_emergency_measure_in_process() -> None:
    result = emergency.measure(1, 1, "none")
    assert result["serial_statuses"] == {"done": 1}
    assert result["per_emergency_family"]["resend"] >= 3
    assert emergency.bound(result)["bound"] > 0


def test_report_renders() -> None:
    text = render([Section("x")], machine(), quick=True, seconds=1.0)
    assert "## Machine" in text and "## x" in text


@pytest.mark.skipif(not os.access(ROTATE, os.X_OK), reason="needs the venv's rotate script")
def test_startup_probe_lists_modules(tmp_path: Path) -> None:
    from bench import startup

    loaded = startup._imports(["--version"], {}, tmp_path)
    assert "sqlalchemy" not in loaded
