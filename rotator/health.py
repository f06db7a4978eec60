"""Ask an environment whether it still works: GET its health URL and compare the status.

`HealthCheck.check` never raises for an unhealthy answer: the `HealthResult` says what
happened, so the monitoring loop can record it. `require_healthy` is the strict form used
after stage and promote. Messages name the URL without user info or query string, so a
token in a health URL never reaches a log or an exception.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from providers.http import HttpClient, redact_url
from rotator.errors import HealthCheckError, RetryLaterError

Sleep = Callable[[float], None]


@dataclass(frozen=True)
class HealthResult:
    """The outcome of one health check: `status` is None when no answer came back."""

    ok: bool
    status: int | None
    detail: str


@dataclass(frozen=True)
class HealthCheck:
    """One environment's health endpoint and what a healthy answer looks like."""

    url: str
    path: str
    expected_status: int = 200
    attempts: int = 3
    delay: float = 2.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if self.delay < 0:
            raise ValueError("delay must not be negative")

    @property
    def target(self) -> str:
        """Return the full URL that is checked."""
        if not self.path:
            return self.url
        return f"{self.url.rstrip('/')}/{self.path.lstrip('/')}"

    def check(self, http: HttpClient, sleep: Sleep = time.sleep) -> HealthResult:
        """Try up to `attempts` times, `delay` seconds apart; return the last outcome."""
        shown = redact_url(self.target)
        result = HealthResult(ok=False, status=None, detail=f"{shown} was not checked")
        for attempt in range(1, self.attempts + 1):
            result = self._once(http, shown)
            if result.ok:
                return result
            if attempt < self.attempts:
                sleep(self.delay)
        return result

    def _once(self, http: HttpClient, shown: str) -> HealthResult:
        try:
            # Not idempotent on purpose: the shared layer then answers a 5xx or a timeout at
            # once instead of retrying it, and this check keeps its own attempts and delay.
            response = http.request(
                "GET",
                self.target,
                provider="health",
                operation="health check",
                idempotent=False,
            )
        except RetryLaterError as exc:
            if exc.status is not None:
                return self._judge(exc.status, shown)
            return HealthResult(ok=False, status=None, detail=f"{shown} did not answer: {exc}")
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            return HealthResult(
                ok=False,
                status=None,
                detail=f"{shown} could not be checked ({type(exc).__name__})",
            )
        response.close()
        return self._judge(response.status_code, shown)

    def _judge(self, status: int, shown: str) -> HealthResult:
        if status == self.expected_status:
            return HealthResult(ok=True, status=status, detail=f"{shown} answered {status}")
        return HealthResult(
            ok=False,
            status=status,
            detail=f"{shown} answered {status}, expected {self.expected_status}",
        )


def require_healthy(
    check: HealthCheck,
    http: HttpClient,
    *,
    environment: str,
    sleep: Sleep = time.sleep,
) -> HealthResult:
    """Run `check` and raise `HealthCheckError` naming the environment if it fails."""
    result = check.check(http, sleep)
    if result.ok:
        return result
    shown = redact_url(check.target)
    tries = f"after {check.attempts} attempt{'s' if check.attempts != 1 else ''}"
    if result.status is not None:
        what = f"answered {result.status} (expected {check.expected_status}) {tries}"
    else:
        what = f"got no answer {tries}: {result.detail}"
    raise HealthCheckError(f"{environment} health check {shown} {what}")
