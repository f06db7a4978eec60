"""HttpClient: retries, Retry-After, non-idempotent safety, redaction, rate limits."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from providers.http import HttpClient, RateLimit, parse_retry_after, redact_url
from rotator.errors import RetryLaterError


def client_for(answers: list[object], **kw: object) -> tuple[HttpClient, list[float], list[str]]:
    """Return a client whose transport plays `answers` in order (responses or exceptions)."""
    sleeps: list[float] = []
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        assert isinstance(answer, httpx.Response)
        return answer

    http = HttpClient(
        httpx.Client(transport=httpx.MockTransport(handler)),
        sleep=sleeps.append,
        rng=lambda: 1.0,
        **kw,  # type: ignore[arg-type]
    )
    return http, sleeps, seen


def send(http: HttpClient, *, idempotent: bool = True, method: str = "GET") -> httpx.Response:
    return http.request(
        method,
        "https://api.example.test/v1/thing?key=SECRETKEY",
        provider="fake",
        operation="op",
        idempotent=idempotent,
    )


def test_retries_503_then_succeeds_with_bounded_backoff() -> None:
    http, sleeps, seen = client_for([httpx.Response(503), httpx.Response(503), httpx.Response(200)])
    assert send(http).status_code == 200
    assert sleeps == [0.5, 1.0]  # full jitter with rng=1.0: base * 2**(n-1)
    assert len(seen) == 3


def test_backoff_is_capped_by_max_delay() -> None:
    http = HttpClient(httpx.Client(), base_delay=1.0, max_delay=5.0, rng=lambda: 1.0)
    assert [http.backoff(n) for n in range(1, 7)] == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    jittered = HttpClient(httpx.Client(), base_delay=1.0, max_delay=5.0, rng=lambda: 0.25)
    assert jittered.backoff(10) == 1.25


def test_retry_after_seconds_is_honoured() -> None:
    http, sleeps, _ = client_for(
        [httpx.Response(429, headers={"retry-after": "7"}), httpx.Response(200)]
    )
    assert send(http).status_code == 200
    assert sleeps == [7.0]


def test_retry_after_http_date_is_honoured() -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=12), usegmt=True)
    http, sleeps, _ = client_for(
        [httpx.Response(429, headers={"retry-after": when}), httpx.Response(200)]
    )
    assert send(http).status_code == 200
    assert 10.0 <= sleeps[0] <= 12.0


def test_retry_after_beyond_inline_wait_raises_retry_later_without_sleeping() -> None:
    http, sleeps, seen = client_for([httpx.Response(429, headers={"retry-after": "300"})])
    with pytest.raises(RetryLaterError) as caught:
        send(http)
    assert caught.value.retry_after == 300.0
    assert caught.value.status == 429
    assert sleeps == [] and len(seen) == 1


def test_gives_up_after_attempt_budget() -> None:
    http, sleeps, seen = client_for([httpx.Response(502)] * 3, max_attempts=3)
    with pytest.raises(RetryLaterError) as caught:
        send(http)
    assert len(seen) == 3 and len(sleeps) == 2
    assert "gave up after 3 attempts" in str(caught.value)
    assert caught.value.provider == "fake" and caught.value.operation == "op"


def test_idempotent_request_is_retried_after_a_read_timeout() -> None:
    http, _, seen = client_for([httpx.ReadTimeout("timed out"), httpx.Response(200)])
    assert send(http).status_code == 200
    assert len(seen) == 2


def test_non_idempotent_request_is_not_retried_after_a_read_timeout() -> None:
    http, sleeps, seen = client_for([httpx.ReadTimeout("timed out"), httpx.Response(201)])
    with pytest.raises(RetryLaterError) as caught:
        send(http, idempotent=False, method="POST")
    assert len(seen) == 1 and sleeps == []
    assert "may have reached the server" in str(caught.value)


@pytest.mark.parametrize("status", [502, 503, 504])
def test_non_idempotent_request_is_not_retried_after_a_5xx(status: int) -> None:
    http, _, seen = client_for([httpx.Response(status), httpx.Response(201)])
    with pytest.raises(RetryLaterError):
        send(http, idempotent=False, method="POST")
    assert len(seen) == 1


def test_non_idempotent_request_is_retried_after_429_and_connect_error() -> None:
    http, _, seen = client_for(
        [
            httpx.Response(429, headers={"retry-after": "1"}),
            httpx.ConnectError("refused"),
            httpx.Response(201),
        ]
    )
    assert send(http, idempotent=False, method="POST").status_code == 201
    assert len(seen) == 3


def test_other_statuses_are_returned_untouched() -> None:
    http, sleeps, _ = client_for([httpx.Response(401)])
    assert send(http).status_code == 401
    assert sleeps == []


def test_errors_and_logs_never_show_the_query_string(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    http, _, _ = client_for([httpx.ReadTimeout("timed out")] * 2 + [httpx.Response(503)] * 2)
    with pytest.raises(RetryLaterError) as caught:
        send(http)
    assert "SECRETKEY" not in str(caught.value)
    error = caught.value
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "api.example.test/v1/thing" in text
    assert "SECRETKEY" not in text


def test_httpx_loggers_are_quiet() -> None:
    assert logging.getLogger("httpx").level >= logging.WARNING
    assert logging.getLogger("httpcore").level >= logging.WARNING


def test_redact_url_drops_query_userinfo_and_fragment() -> None:
    assert redact_url("https://u:p@h.test:8443/a/b?key=x#frag") == "https://h.test:8443/a/b"
    assert redact_url("https://h.test/v1/projects?key=AIza") == "https://h.test/v1/projects"


def test_parse_retry_after() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_retry_after("5", now) == 5.0
    assert parse_retry_after("Thu, 01 Jan 2026 00:01:00 GMT", now) == 60.0
    assert parse_retry_after("Wed, 31 Dec 2025 00:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def test_rate_limit_spaces_requests() -> None:
    clock = [0.0]
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    limit = RateLimit(2.0, 1, clock=lambda: clock[0], sleep=sleep)
    for _ in range(3):
        with limit:
            pass
    assert sleeps == [0.5, 1.0]


def test_rate_limit_caps_concurrency() -> None:
    limit = RateLimit(1000.0, 2)
    inside = 0
    peak = 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal inside, peak
        with limit:
            with lock:
                inside += 1
                peak = max(peak, inside)
            time.sleep(0.02)
            with lock:
                inside -= 1

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak == 2


def test_http_client_applies_the_provider_limit() -> None:
    used: list[str] = []

    class Counting(RateLimit):
        def __enter__(self) -> RateLimit:
            used.append("in")
            return super().__enter__()

    http, _, _ = client_for([httpx.Response(200)], limits={"fake": Counting(100.0, 1)})
    send(http)
    assert used == ["in"]
