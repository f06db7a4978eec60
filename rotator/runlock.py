"""Keep `rotate run` to one instance per host and spread scheduled runs over a few minutes.

The lock is `flock(2)` on a file in the state directory: the kernel drops it when the
process exits, however it exits, so a crashed run never leaves a stale lock behind and
the file is never deleted (deleting a lock file lets two runners lock two different
inodes). It guards one host only; runners on several hosts sharing a PostgreSQL
database are kept apart per rotation by the claim and the fencing counter.

The random delay is certbot's: `certbot renew` sleeps up to 8 minutes when it is not on a
terminal, so that thousands of machines whose cron fires at the same minute do not hit
the provider at once. Ours is at most 5 minutes: a run started at 02:30 still promotes
well inside the default 02:00 to 04:00 production window.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import sys
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from types import TracebackType

from rotator.clock import now
from rotator.errors import ClaimedElsewhereError

DEFAULT_MAX_DELAY = 300.0
"""Seconds: the longest random wait before a run that is not on a terminal."""
NO_DELAY_ENV = "ROTATOR_NO_DELAY"
LOCK_FILE = "run.lock"


def default_lock_path() -> Path:
    """Return `<state dir>/run.lock`, the state directory created 0700 and checked."""
    from rotator.paths import private_state_dir

    return private_state_dir() / LOCK_FILE


class RunLock:
    """Hold an exclusive, non-blocking lock on `path` for the length of a `with` block."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path if path is not None else default_lock_path()
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lock or raise `ClaimedElsewhereError` naming the holder."""
        from rotator.errors import StateFileError
        from rotator.safefile import ensure_private_dir, open_private

        ensure_private_dir(self.path.parent)
        try:
            # No O_TRUNC, and no following a link: a planted run.lock must not cost a file.
            fd = open_private(self.path, os.O_RDWR | os.O_CREAT)
        except OSError as exc:
            raise StateFileError(
                f"cannot open the run lock {self.path}: {exc.strerror}; run rotate as the "
                "user that owns the state directory, or make it writable"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise ClaimedElsewhereError(
                f"another rotate run is already running ({holder}); this one did nothing. "
                f"Wait for it to finish: the lock on {self.path} is released when that "
                "process exits, even if it crashes, so there is nothing to delete"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        # Who holds it, for the message a second instance prints; informative only.
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n{now().isoformat()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Drop the lock; the file stays, empty, for the next run."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode("ascii", "replace")
    except OSError:
        text = ""
    pid, _, since = text.strip().partition("\n")
    if not pid.isdigit():
        return "pid unknown"
    try:
        when = datetime.fromisoformat(since.strip()).strftime("%Y-%m-%d %H:%M:%S %Z")
    except ValueError:
        when = "an unknown time"
    return f"pid {pid}, since {when.strip()}"


def _interactive() -> bool:
    for stream in (sys.stdin, sys.stdout):
        try:
            if stream is not None and stream.isatty():
                return True
        except (ValueError, OSError):  # a closed stream is not a terminal
            continue
    return False


def startup_delay(
    max_seconds: float = DEFAULT_MAX_DELAY,
    *,
    sleep: Callable[[float], None] = time.sleep,
    rng: Callable[[], float] = random.random,
    isatty: Callable[[], bool] = _interactive,
    environ: Mapping[str, str] = os.environ,
    say: Callable[[str], None] | None = None,
) -> float:
    """Sleep a random time below `max_seconds` unless on a terminal; return the seconds slept.

    No delay when stdin or stdout is a terminal (a person is waiting), when
    `ROTATOR_NO_DELAY=1` (a systemd timer with `RandomizedDelaySec` already spreads the
    start), or when `max_seconds` is 0.
    """
    if max_seconds <= 0 or environ.get(NO_DELAY_ENV, "") not in ("", "0") or isatty():
        return 0.0
    delay = rng() * max_seconds
    if say is not None:
        say(
            f"waiting {delay:.0f} s before starting (a random delay so that many hosts do not "
            f"call the providers at once; --no-delay or {NO_DELAY_ENV}=1 skips it)"
        )
    sleep(delay)
    return delay
