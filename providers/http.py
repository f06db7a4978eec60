"""Send provider HTTP requests with bounded retries, rate limits and no secret in any log.

Retried: 429, 502, 503, 504 and transport errors, with exponential backoff and full
jitter, honouring `Retry-After` (seconds or HTTP date). A wait longer than
`max_inline_wait` is not slept: `RetryLaterError(retry_after=...)` lets the engine
reschedule the step. A non-idempotent request (a create) is retried only when it cannot
have reached the server (connect errors) or the server said so explicitly (429); after a
timeout or a 5xx it raises `RetryLaterError` and the provider reconciles by listing.

Nothing here logs or raises a body, a header or a query string: Google puts API keys in
`?key=`, and every provider puts a credential in a header.
"""

from __future__ import annotations

import functools
import logging
import random
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from rotator.errors import RetryLaterError

log = logging.getLogger("rotator.http")

RETRY_STATUSES = frozenset({429, 502, 503, 504})

# These failures happen before a single byte of the request leaves this host.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


def redact_url(url: str | httpx.URL) -> str:
    """Return `url` without user info, query string or fragment."""
    parsed = httpx.URL(str(url))
    port = f":{parsed.port}" if parsed.port is not None else ""
    if not parsed.scheme:
        return parsed.path
    return f"{parsed.scheme}://{parsed.host}{port}{parsed.path}"


class _RedactUrls(logging.Filter):
    """Strip query strings from the URLs httpx passes as log arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact_url(a) if isinstance(a, httpx.URL) else a for a in record.args
            )
        return True


# httpx logs every request at INFO with its full URL, query string included: quiet it,
# and redact the URL too in case someone turns it back on.
for _name in ("httpx", "httpcore"):
    _quiet = logging.getLogger(_name)
    if _quiet.level < logging.WARNING:
        _quiet.setLevel(logging.WARNING)
    if not any(isinstance(f, _RedactUrls) for f in _quiet.filters):
        _quiet.addFilter(_RedactUrls())


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Return the wait in seconds a `Retry-After` header asks for, or None if unusable."""
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now or datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


class RateLimit:
    """Cap one provider's request rate and the number of requests in flight, across threads."""

    def __init__(
        self,
        rate_per_second: float,
        concurrency: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate_per_second <= 0 or concurrency < 1:
            raise ValueError("rate_per_second must be > 0 and concurrency >= 1")
        self.rate_per_second = rate_per_second
        self.concurrency = concurrency
        self._interval = 1.0 / rate_per_second
        self._slots = threading.BoundedSemaphore(concurrency)
        self._lock = threading.Lock()
        self._next_start = 0.0
        self._clock = clock
        self._sleep = sleep

    def __enter__(self) -> RateLimit:
        self._slots.acquire()
        try:
            with self._lock:
                now = self._clock()
                start = max(now, self._next_start)
                self._next_start = start + self._interval
            # Sleep outside the lock: the slot start is already reserved for this thread.
            if start > now:
                self._sleep(start - now)
        except BaseException:
            self._slots.release()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._slots.release()


@dataclass(frozen=True)
class CallRecord:
    """One attempt of one request, as the audit trail records it: never a URL query or body."""

    provider: str
    operation: str
    method: str
    url: str
    status: int | None
    attempt: int
    outcome: str
    retry_after: float | None = None
    """Seconds the server asked to wait (`Retry-After` of a 429 or 503), when it said."""


class HttpClient:
    """Send requests through a handed-in `httpx.Client`, retrying what is safe to retry.

    Every attempt is reported to each function in `observers` as a `CallRecord`, which is
    how the engine audits every provider and target call without seeing a value.
    """

    def __init__(
        self,
        client: httpx.Client,
        *,
        max_attempts: int = 4,
        base_delay: float = 0.5,
        max_delay: float = 20.0,
        max_inline_wait: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        rng: Callable[[], float] = random.random,
        limits: Mapping[str, RateLimit] | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.client = client
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.max_inline_wait = max_inline_wait
        self.sleep = sleep
        self.rng = rng
        self.limits: Mapping[str, RateLimit] = dict(limits or {})
        self.observers: list[Callable[[CallRecord], None]] = []

    def _observe(
        self,
        method: str,
        url: str,
        kw: Mapping[str, str],
        status: int | None,
        attempt: int,
        outcome: str,
        retry_after: float | None = None,
    ) -> None:
        if not self.observers:
            return
        record = CallRecord(
            kw["provider"],
            kw["operation"],
            method,
            redact_url(url),
            status,
            attempt,
            outcome,
            retry_after,
        )
        for observer in self.observers:
            observer(record)

    def backoff(self, attempt: int) -> float:
        """Return the full-jitter delay after failed attempt number `attempt` (from 1)."""
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        return self.rng() * ceiling

    def request(
        self,
        method: str,
        url: str,
        *,
        provider: str,
        operation: str,
        idempotent: bool,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        auth: httpx.Auth | tuple[str, str] | None = None,
    ) -> httpx.Response:
        """Send one logical request and return the first answer that is not retried."""
        where = f"{method} {redact_url(url)}"
        kw: dict[str, Any] = {"provider": provider, "operation": operation}
        attempt = 0
        while True:
            attempt += 1
            wait: float | None = None
            status: int | None = None
            try:
                with self._limit(provider):
                    response = self.client.request(
                        method,
                        url,
                        headers=headers,
                        params=params,
                        json=json,
                        data=data,
                        auth=auth if auth is not None else httpx.USE_CLIENT_DEFAULT,
                    )
            except _NOT_SENT as exc:
                reason = f"could not connect for {where} ({type(exc).__name__})"
                self._observe(method, url, kw, None, attempt, type(exc).__name__)
            except httpx.TransportError as exc:
                reason = f"no answer to {where} ({type(exc).__name__})"
                self._observe(method, url, kw, None, attempt, type(exc).__name__)
                if not idempotent:
                    # The create may have happened; repeating it could make a second one.
                    raise RetryLaterError(
                        f"{reason}; the request may have reached the server, "
                        "so it is not repeated (the next run looks for what it created)",
                        **kw,
                    ) from None
            else:
                status = response.status_code
                log.debug(
                    "%s -> %s (%s %s, attempt %d)",
                    where,
                    status,
                    provider,
                    operation,
                    attempt,
                )
                if status not in RETRY_STATUSES:
                    self._observe(method, url, kw, status, attempt, "answered")
                    return response
                wait = parse_retry_after(response.headers.get("retry-after"))
                self._observe(method, url, kw, status, attempt, "retryable", wait)
                reason = f"{where} answered {status}"
                if status != 429 and not idempotent:
                    raise RetryLaterError(
                        f"{reason}; the request may have been processed, so it is not repeated",
                        status=status,
                        **kw,
                    )
                response.close()
            if wait is None:
                wait = self.backoff(attempt)
            if wait > self.max_inline_wait:
                raise RetryLaterError(
                    f"{reason}; asked to wait {wait:.0f}s, longer than waiting inline allows",
                    retry_after=wait,
                    status=status,
                    **kw,
                )
            if attempt >= self.max_attempts:
                raise RetryLaterError(
                    f"{reason}; gave up after {attempt} attempts",
                    retry_after=wait,
                    status=status,
                    **kw,
                )
            log.debug("%s: retrying in %.2fs (%s %s)", where, wait, provider, operation)
            self.sleep(wait)

    @contextmanager
    def _limit(self, provider: str) -> Iterator[None]:
        limit = self.limits.get(provider)
        if limit is None:
            yield
            return
        with limit:
            yield


# ------------------------------------------------------------------ client construction
DEFAULT_CALL_DEADLINE = 60.0
"""Seconds one HTTP exchange may take from sending to the last byte of the answer."""
DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024
"""The largest answer read; every provider answer we use is a few kilobytes."""


class ResponseTooLarge(httpx.ReadError):
    """The answer exceeded the size cap; reading stopped (a transport error, not a body)."""


class DeadlineExceeded(httpx.ReadTimeout):
    """The exchange took longer than its overall deadline (a provider trickling bytes)."""


class _BoundedStream(httpx.SyncByteStream):
    def __init__(
        self, inner: httpx.SyncByteStream, deadline: float, cap: int, clock: Callable[[], float]
    ) -> None:
        self._inner = inner
        self._deadline = deadline
        self._cap = cap
        self._clock = clock

    def __iter__(self) -> Iterator[bytes]:
        seen = 0
        for chunk in self._inner:
            seen += len(chunk)
            if seen > self._cap:
                raise ResponseTooLarge(f"answer larger than {self._cap} bytes")
            if self._clock() > self._deadline:
                raise DeadlineExceeded("answer not complete within the call deadline")
            yield chunk

    def close(self) -> None:
        self._inner.close()


class BoundedTransport(httpx.BaseTransport):
    """Wrap a transport so every exchange ends by a deadline and reads at most `cap` bytes.

    httpx's timeouts bound each socket operation, so a server sending one byte every few
    seconds is never timed out; this bounds the whole exchange. The check runs as each
    chunk arrives, so the longest exchange is the deadline plus one read timeout.
    """

    def __init__(
        self,
        inner: httpx.BaseTransport,
        *,
        deadline: float = DEFAULT_CALL_DEADLINE,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self.deadline = deadline
        self.max_response_bytes = max_response_bytes
        self.clock = clock

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        until = self.clock() + self.deadline
        response = self.inner.handle_request(request)
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_response_bytes:
            response.close()
            raise ResponseTooLarge(
                f"answer of {declared} bytes is larger than {self.max_response_bytes}",
                request=request,
            )
        if self.clock() > until:
            response.close()
            raise DeadlineExceeded("no answer within the call deadline", request=request)
        assert isinstance(response.stream, httpx.SyncByteStream)
        response.stream = _BoundedStream(
            response.stream, until, self.max_response_bytes, self.clock
        )
        return response

    def close(self) -> None:
        self.inner.close()


@functools.cache
def default_tls_context() -> ssl.SSLContext:
    """Return httpx's default TLS context (certifi's bundle, nothing from the environment).

    Loading the bundle takes tens of milliseconds; a process that builds several clients
    (the demo's daily runs, the in-process tests) loads it once. Clients can share it:
    httpcore only sets ALPN on it per connection, always to HTTP/1.1 here (no HTTP/2).
    """
    return httpx.create_ssl_context(verify=True, trust_env=False)


def build_client(
    *,
    transport: httpx.BaseTransport | None = None,
    user_agent: str,
    proxy: str | None = None,
    ca_bundle: str | None = None,
    trust_environment: bool = False,
    deadline: float = DEFAULT_CALL_DEADLINE,
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
) -> httpx.Client:
    """Build the one `httpx.Client` every provider and target call goes through.

    The environment (`HTTP_PROXY`, `HTTPS_PROXY`, `SSL_CERT_FILE`, `.netrc`) is ignored
    unless `trust_environment`: a proxy set for some other program would see the tool's
    tokens and every new credential. A proxy or CA bundle is used only when the inventory
    names it (`[network]`). `transport` replaces the network (tests, the sandbox).
    """
    inner = transport
    if inner is None:
        import os

        if trust_environment:
            proxy = proxy or os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
            ca_bundle = ca_bundle or os.environ.get("SSL_CERT_FILE")
        verify: ssl.SSLContext = (
            ssl.create_default_context(cafile=ca_bundle) if ca_bundle else default_tls_context()
        )
        inner = httpx.HTTPTransport(verify=verify, proxy=proxy or None, trust_env=False)
    return httpx.Client(
        timeout=httpx.Timeout(20.0, connect=5.0),
        transport=BoundedTransport(inner, deadline=deadline, max_response_bytes=max_response_bytes),
        headers={"User-Agent": user_agent},
        follow_redirects=False,
        trust_env=trust_environment,
    )
