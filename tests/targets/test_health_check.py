from __future__ import annotations

import httpx
import pytest
from fake_cloudflare import Sleeps

from providers.http import HttpClient
from rotator.errors import HealthCheckError
from rotator.health import HealthCheck, HealthResult, require_healthy


def client(answers: list[int | Exception]) -> tuple[HttpClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(answer, Exception):
            raise answer
        return httpx.Response(answer)

    transport = httpx.MockTransport(handler)
    http = HttpClient(httpx.Client(transport=transport), sleep=Sleeps(), rng=lambda: 0.0)
    return http, seen


CHECK = HealthCheck("https://staging.example.test/", "/api/health", attempts=3, delay=2.0)


def test_a_healthy_answer_is_ok_at_once():
    http, seen = client([200])
    sleeps = Sleeps()
    result = CHECK.check(http, sleeps)
    assert result == HealthResult(
        ok=True, status=200, detail="https://staging.example.test/api/health answered 200"
    )
    assert [str(r.url) for r in seen] == ["https://staging.example.test/api/health"]
    assert sleeps == []


def test_a_bad_status_is_retried_then_reported():
    http, seen = client([503])
    sleeps = Sleeps()
    result = CHECK.check(http, sleeps)
    assert result.ok is False and result.status == 503
    assert "expected 200" in result.detail
    assert len(seen) == 3
    assert sleeps == [2.0, 2.0]


def test_recovery_on_a_later_attempt_is_ok():
    http, seen = client([500, 404, 200])
    result = CHECK.check(http, Sleeps())
    assert result.ok and len(seen) == 3


def test_another_expected_status_is_honoured():
    http, _ = client([204])
    assert HealthCheck("http://h", "/", expected_status=204).check(http, Sleeps()).ok


def test_a_transport_error_is_a_failed_result_not_an_exception():
    http, _ = client([httpx.ReadTimeout("slow")])
    result = CHECK.check(http, Sleeps())
    assert result.ok is False and result.status is None
    assert "did not answer" in result.detail


def test_a_connection_refused_is_a_failed_result():
    http, _ = client([httpx.ConnectError("refused")])
    result = CHECK.check(http, Sleeps())
    assert result.ok is False and result.status is None


def test_require_healthy_raises_naming_environment_url_status_and_attempts():
    http, _ = client([503])
    check = HealthCheck("https://user:pw@staging.example.test", "/api/health?token=t0ps3cret")
    with pytest.raises(HealthCheckError) as caught:
        require_healthy(check, http, environment="staging", sleep=Sleeps())
    assert str(caught.value) == (
        "staging health check https://staging.example.test/api/health answered 503 "
        "(expected 200) after 3 attempts"
    )


def test_require_healthy_without_answer_says_so():
    http, _ = client([httpx.ReadTimeout("slow")])
    with pytest.raises(HealthCheckError, match="got no answer after 1 attempt:"):
        require_healthy(HealthCheck("http://h", "/x", attempts=1), http, environment="local")


def test_require_healthy_returns_the_result_when_ok():
    http, _ = client([200])
    assert require_healthy(CHECK, http, environment="staging", sleep=Sleeps()).ok


def test_attempts_must_be_positive():
    with pytest.raises(ValueError):
        HealthCheck("http://h", "/", attempts=0)
