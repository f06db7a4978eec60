"""Issue 19, item 7: host-level mistakes end in their documented code, naming the path.

Each case used to end in `internal error` (exit 70), a silent wrong answer, or a code that
differed between commands. Nothing changes in the database (see `expect`).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability.conftest import RESEND, Case, expect

STRIPE = "BANDOFBAKERS_STRIPE_SECRET_KEY"
NOT_UTF8 = b"sk_live_\xff\xfe\xfd\n"


@contextlib.contextmanager
def _immutable(path: Path) -> Iterator[None]:
    """Make a directory unwritable even for root (the immutable flag), else by its mode."""
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(path)], check=False).returncode != 0:
            pytest.skip("running as root and chattr +i is not supported here")
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=True)
    else:
        mode = path.stat().st_mode
        path.chmod(0o500)
        try:
            yield
        finally:
            path.chmod(mode)


def _bytes_in(case: Case, *args: str, data: bytes) -> subprocess.CompletedProcess[bytes]:
    env = {
        **os.environ,
        **case.env,
        "ROTATOR_FAKE_TIME": case.state.clock().isoformat(),
        "ROTATOR_ACTOR": "tester@reliability",
    }
    return subprocess.run(
        [sys.executable, "-m", "rotator", *args],
        input=data,
        capture_output=True,
        env=env,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    "args",
    [("supply", STRIPE), ("import", "GOOGLE_CLIENT_SECRET", "--env", "staging", "--ref", "x")],
    ids=["supply", "import"],
)
def test_a_value_that_is_not_utf8_exits_2(q1: Case, args: tuple[str, ...]) -> None:
    rows, events = q1.rows(), q1.audit_types()
    done = _bytes_in(q1, *args, data=NOT_UTF8)
    stderr = done.stderr.decode()
    assert done.returncode == 2, stderr
    assert "not UTF-8 text" in stderr and "Traceback" not in stderr
    assert q1.rows() == rows and q1.audit_types() == events


@pytest.mark.parametrize("year", ["0", "10000", "-1"])
def test_calendar_year_out_of_range_exits_2(q1: Case, year: str) -> None:
    expect(q1, "calendar", "--year", year, code=2, message="Invalid value for '--year'")


def test_metrics_out_in_an_unwritable_directory_names_it(q1: Case, tmp_path: Path) -> None:
    out = tmp_path / "textfile"
    out.mkdir()
    with _immutable(out):
        done = expect(
            q1, "metrics", "--out", str(out / "rotator.prom"), code=2, message="cannot write"
        )
    assert str(out / "rotator.prom") in done.stderr


def test_emergency_with_an_unwritable_state_directory_names_it(q1: Case) -> None:
    # SQLite needs its directory for the journal; the old code ended in exit 70.
    with _immutable(q1.home):
        done = q1.rotate("emergency", RESEND, "--reason", "test", "--yes")
    assert done.returncode in (6, 9), (done.returncode, done.stderr)
    assert "internal error" not in done.stderr and "Traceback" not in done.stderr
    assert str(q1.home) in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("show", "BANDOFBAKERS_RESEND_API_KY"), "did you mean 'BANDOFBAKERS_RESEND_API_KEY'?"),
        (("show", "bandofbakers_resend_api_key"), "did you mean 'BANDOFBAKERS_RESEND_API_KEY'?"),
        (("show", "GOOGLE_CLIENT_SECRET", "--env", "stagin"), "did you mean 'staging'?"),
    ],
    ids=["misspelt-secret", "lower-case-secret", "misspelt-environment"],
)
def test_a_wrong_name_suggests_the_right_one(q1: Case, args: tuple[str, ...], message: str) -> None:
    expect(q1, *args, code=2, message=message)


def test_quiet_prints_nothing_on_success_and_still_the_error(q1: Case) -> None:
    done = q1.rotate("status", "--quiet")
    assert done.returncode == 0 and done.stdout == "" and done.stderr == ""
    as_json = q1.rotate("-q", "status", "--json")
    assert as_json.stdout.startswith("[")
    bad = q1.rotate("show", "NOPE", "--quiet")
    assert bad.returncode == 2 and "unknown secret 'NOPE'" in bad.stderr


def test_rollback_abort_and_rewrap_take_yes(q1: Case) -> None:
    for command in ("rollback", "abort", "keys rewrap"):
        done = q1.rotate(*command.split(), "--help")
        assert "--yes" in done.stdout, command
