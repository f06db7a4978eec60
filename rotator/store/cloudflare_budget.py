"""Keep one Cloudflare request budget for every runner process, in the store.

Cloudflare allows 1,200 requests per 5 minutes per user, shared with CI and the
dashboard, and going over blocks every call of that user for 5 minutes
(https://developers.cloudflare.com/fundamentals/api/reference/limits). A per-process
rate cannot keep to that when several runners work at once, so the budget lives in the
database they share: each process takes requests from it in small batches (one short
write transaction per batch, not per request) and stops, with `RetryLaterError`, when
the window's share is spent or a block is known. The default share stays below the
ceiling so people and CI keep room; Cloudflare's own `Ratelimit` header, which counts
every client of the token, stops the tool early when the account is close to the limit.

It is used as the `cloudflare` entry of `HttpClient.limits` (a context manager around
each attempt) and as an observer of every attempt (a 429 blocks the budget).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlmodel import Field, SQLModel

from rotator import clock
from rotator.clock import as_utc
from rotator.errors import RetryLaterError

if TYPE_CHECKING:
    from rotator.store.db import Store

CLOUDFLARE_CEILING = 1200
DEFAULT_SHARE = 900
"""Requests per window the tool takes: three quarters of the ceiling leaves CI and people room."""
WINDOW = 300.0
BLOCK = 300.0
"""How long Cloudflare blocks a user who went over (the limits page)."""
FLOOR = 100
"""Stop when Cloudflare says fewer than this many requests remain for the user."""
BATCH = 20
INLINE_WAIT = 30.0
"""The longest pause waited out in the call, as `HttpClient.max_inline_wait`."""
PAUSE_OPERATION = "budget"
"""The `operation` of the `RetryLaterError` for a pause: the engine does not count it."""
_MAX_PAUSES = 3
"""Pauses one request waits out before its `RetryLaterError` goes to the engine."""
_NAME = "cloudflare"
_RATELIMIT = re.compile(r"\br=(\d+)\b.*?\bt=(\d+)\b|\bt=(\d+)\b.*?\br=(\d+)\b")


class CloudflareBudgetRow(SQLModel, table=True):
    """The shared window: when it began, how much of it is taken, until when calls stop."""

    __tablename__ = "cloudflare_budget"

    name: str = Field(primary_key=True)
    window_start: datetime
    spent: int = 0
    blocked_until: datetime | None = None


class CloudflareBudget:
    """Take Cloudflare requests from the store's shared budget; wrap a per-process pace."""

    def __init__(
        self,
        store: Callable[[], Store],
        *,
        inner: Any = None,
        share: int = DEFAULT_SHARE,
        window: float = WINDOW,
        batch: int = BATCH,
        floor: int = FLOOR,
        now: Callable[[], datetime] = clock.now,
        sleep: Callable[[float], None] | None = None,
        max_wait: float = 0.0,
        progress: Callable[[str], None] = lambda _line: None,
    ) -> None:
        if not 0 < share <= CLOUDFLARE_CEILING:
            raise ValueError(f"the Cloudflare share must be between 1 and {CLOUDFLARE_CEILING}")
        # A factory: the store is opened at the first Cloudflare call, not when built.
        self._store = store
        self._inner = inner
        self.share = share
        self._window = timedelta(seconds=window)
        self._batch = max(1, batch)
        self._floor = floor
        self._now = now
        self._sleep = sleep
        self._max_wait = max_wait
        self._progress = progress
        self._lock = threading.Lock()
        self._allowance = 0
        self._allowance_until: datetime | None = None

    def __enter__(self) -> CloudflareBudget:
        if self._inner is not None:
            self._inner.__enter__()
        try:
            self.take()
        except BaseException:
            if self._inner is not None:
                self._inner.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self._inner is not None:
            self._inner.__exit__(*exc)

    def take(self) -> None:
        """Take one request, waiting up to `max_wait` for it; else raise `RetryLaterError`.

        A spent share or a block is a pause, not a failure: waiting for the window is
        what the caller would do anyway, and a step's retry budget is for real failures.
        """
        for _ in range(_MAX_PAUSES):
            try:
                self._take_once()
                return
            except RetryLaterError as exc:
                wait = exc.retry_after or 0.0
                if self._sleep is None or wait > self._max_wait:
                    raise
                self._progress(f"cloudflare: {exc}")
                self._sleep(wait)
        self._take_once()

    def _take_once(self) -> None:
        from sqlalchemy.exc import IntegrityError

        try:
            self._take_from_store()
        except IntegrityError:
            # Two runners creating the window's row at once (its first use): one insert
            # wins, and the other's second try reads it.
            self._take_from_store()

    def _take_from_store(self) -> None:
        with self._lock:
            now = as_utc(self._now())
            if self._allowance > 0 and self._allowance_until and now < self._allowance_until:
                self._allowance -= 1
                return
            with self._store().write() as s:
                row = s.get(CloudflareBudgetRow, _NAME)
                if row is None:
                    row = CloudflareBudgetRow(name=_NAME, window_start=now)
                blocked = as_utc(row.blocked_until) if row.blocked_until else None
                if blocked is not None and now < blocked:
                    raise self._wait(blocked - now, "Cloudflare is blocking this account's calls")
                start = as_utc(row.window_start)
                if now - start >= self._window:
                    start, row.window_start, row.spent = now, now, 0
                grant = min(self._batch, self.share - row.spent)
                if grant <= 0:
                    raise self._wait(
                        start + self._window - now,
                        f"the tool's share of the account's Cloudflare budget ({self.share} of "
                        f"{CLOUDFLARE_CEILING} requests per {self._window.seconds // 60} "
                        "minutes, shared by every runner) is spent",
                    )
                row.spent += grant
                s.add(row)
            self._allowance = grant - 1
            self._allowance_until = start + self._window

    def _wait(self, left: timedelta, why: str) -> RetryLaterError:
        seconds = max(1.0, left.total_seconds())
        return RetryLaterError(
            f"{why}; waiting {seconds:.0f}s before calling Cloudflare again",
            retry_after=seconds,
            provider="cloudflare",
            operation=PAUSE_OPERATION,
            status=429,
        )

    def block(self, seconds: float) -> None:
        """Stop every runner's Cloudflare calls for `seconds` (a 429, or a low `Ratelimit`)."""
        from sqlalchemy.exc import IntegrityError

        try:
            self._block(seconds)
        except IntegrityError:
            self._block(seconds)  # another runner created the row first: update it

    def _block(self, seconds: float) -> None:
        with self._lock:
            now = as_utc(self._now())
            until = now + timedelta(seconds=max(1.0, seconds))
            with self._store().write() as s:
                row = s.get(CloudflareBudgetRow, _NAME) or CloudflareBudgetRow(
                    name=_NAME, window_start=now
                )
                current = as_utc(row.blocked_until) if row.blocked_until else None
                row.blocked_until = max(until, current) if current else until
                s.add(row)
            self._allowance = 0

    def observe(self, record: Any) -> None:
        """Block on a Cloudflare 429 seen by `HttpClient` (an observer of every attempt).

        The block lasts as long as the answer's `Retry-After` says; without one, the
        5 minutes Cloudflare documents for a user over the limit.
        """
        provider = str(getattr(record, "provider", ""))
        if provider.startswith("cloudflare") and getattr(record, "status", None) == 429:
            said = getattr(record, "retry_after", None)
            self.block(float(said) if said is not None else BLOCK)

    def observe_headers(self, headers: Mapping[str, str]) -> None:
        """Read `Retry-After` and `Ratelimit` of a Cloudflare answer; stop early if low."""
        retry_after = headers.get("retry-after")
        if retry_after and retry_after.strip().isdigit():
            self.block(float(retry_after))
            return
        remaining = ratelimit(headers.get("ratelimit"))
        if remaining is not None and remaining[0] < self._floor:
            self.block(float(remaining[1]))


def ratelimit(value: str | None) -> tuple[int, int] | None:
    """Return (remaining, seconds to reset) of a `Ratelimit: "default";r=50;t=30` header."""
    if not value:
        return None
    found = _RATELIMIT.search(value)
    if found is None:
        return None
    if found.group(1) is not None:
        return int(found.group(1)), int(found.group(2))
    return int(found.group(4)), int(found.group(3))
