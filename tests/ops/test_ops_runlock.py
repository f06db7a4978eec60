"""One `rotate run` at a time per host, and a random delay only when nobody is watching."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rotator.errors import ClaimedElsewhereError
from rotator.runlock import DEFAULT_MAX_DELAY, RunLock, default_lock_path, startup_delay

HOLD = """
import sys, time
from pathlib import Path
from rotator.runlock import RunLock
with RunLock(Path(sys.argv[1])):
    print("held", flush=True)
    time.sleep(30)
"""


def test_a_second_lock_is_refused_naming_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "run.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(ClaimedElsewhereError) as caught, RunLock(path):
            pass
        message = str(caught.value)
        assert message.startswith("another rotate run is already running")
        assert f"pid {holder.pid}, since " in message
        assert caught.value.exit_code == 10
    finally:
        holder.kill()
        holder.wait()
    # The kernel dropped the lock with the process: no stale lock to clean up.
    with RunLock(path):
        assert path.read_text().startswith(f"{__import__('os').getpid()}\n")
    assert path.exists() and path.read_text() == ""


def test_the_lock_is_released_on_error_and_reusable(tmp_path: Path) -> None:
    path = tmp_path / "state" / "run.lock"
    with pytest.raises(RuntimeError), RunLock(path):
        raise RuntimeError("boom")
    with RunLock(path), pytest.raises(ClaimedElsewhereError):
        RunLock(path).acquire()  # flock is per open file: a second open conflicts too
    assert (path.stat().st_mode & 0o777) == 0o600


def test_the_default_lock_lives_in_the_state_directory(state_dir: Path) -> None:
    assert default_lock_path() == state_dir / "run.lock"


def test_no_delay_on_a_terminal() -> None:
    slept: list[float] = []
    assert startup_delay(sleep=slept.append, rng=lambda: 0.5, isatty=lambda: True, environ={}) == 0
    assert slept == []


def test_one_random_delay_when_not_on_a_terminal() -> None:
    slept: list[float] = []
    said: list[str] = []
    got = startup_delay(sleep=slept.append, rng=lambda: 0.5, isatty=lambda: False, environ={},
                        say=said.append)  # fmt: skip
    assert got == DEFAULT_MAX_DELAY / 2
    assert slept == [DEFAULT_MAX_DELAY / 2]
    assert "ROTATOR_NO_DELAY=1" in said[0]
    assert DEFAULT_MAX_DELAY <= 480  # never longer than certbot's 8 minutes


@pytest.mark.parametrize("environ, max_seconds", [({"ROTATOR_NO_DELAY": "1"}, 300.0), ({}, 0.0)])
def test_the_delay_can_be_switched_off(environ: dict[str, str], max_seconds: float) -> None:
    slept: list[float] = []
    got = startup_delay(max_seconds, sleep=slept.append, rng=lambda: 0.9, isatty=lambda: False,
                        environ=environ)  # fmt: skip
    assert got == 0 and slept == []


def test_a_closed_stdin_counts_as_not_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    from rotator import runlock

    class Closed:
        def isatty(self) -> bool:
            raise ValueError("I/O operation on closed file")

    monkeypatch.setattr(runlock.sys, "stdin", Closed())
    monkeypatch.setattr(runlock.sys, "stdout", None)
    assert runlock._interactive() is False
