"""Signals (issue 15): verdicts from Rollbar and Logflare answers, and the inventory's checks.

The HTTP answers are `httpx.MockTransport` stand-ins shaped as docs/contracts.md says;
every path that cannot answer must be `unknown` (never ok), and no token may appear in a
verdict, its figures or a message.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from providers.http import HttpClient
from rotator import inventory
from rotator.credentials import InventoryCredentials
from rotator.errors import InventoryError
from rotator.inventory import CredentialRef
from rotator.sandbox.observability import Observability
from rotator.signals.base import (
    DEGRADED,
    OK,
    UNKNOWN,
    SignalContext,
    Span,
    get_signal,
    load_signals,
)
from tests.conftest import EXAMPLE

TOKEN = "rb-read-token-do-not-leak-1234567890"
CHANGE = datetime(2027, 3, 2, 2, 30, tzinfo=UTC)
SPAN = Span(CHANGE, CHANGE + timedelta(hours=6), CHANGE - timedelta(hours=6), CHANGE)

Handler = Callable[[httpx.Request], httpx.Response]


def _ctx(
    handler: Handler, monkeypatch: pytest.MonkeyPatch, env: str = "production"
) -> SignalContext:
    monkeypatch.setenv("ROLLBAR_READ_TOKEN", TOKEN)
    http = HttpClient(httpx.Client(transport=httpx.MockTransport(handler)), sleep=lambda _s: None)
    creds = InventoryCredentials(
        {"rollbar": CredentialRef("rollbar", "ROLLBAR_READ_TOKEN", None)}, Path(".")
    )
    return SignalContext(http, creds, env)


def _rollbar(
    counts: dict[tuple[int, int], tuple[int, int]], items: list[dict[str, Any]]
) -> Handler:
    """Answer metrics by (start, end) with (errors, all) and the items list."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        assert request.headers["X-Rollbar-Access-Token"] == TOKEN
        assert TOKEN not in str(request.url)
        if request.url.path == "/api/1/metrics/occurrences":
            body = json.loads(request.content)
            assert body["filters"] == [
                {"field": "environment", "operator": "eq", "value": "production"}
            ]
            errors, total = counts[(body["start_time"], body["end_time"])]
            rows = [
                {"level": "error", "count": errors - 1},
                {"level": "critical", "count": 1},
                {"level": "info", "count": total - errors},
            ]
            return httpx.Response(200, json={"err": 0, "result": {"rows": rows}})
        if request.url.path == "/api/1/items":
            assert request.url.params["level"] == "critical"
            return httpx.Response(200, json={"err": 0, "result": {"items": items}})
        return httpx.Response(404)

    return handler


def _ts(moment: datetime) -> int:
    return int(moment.timestamp())


CURRENT = (_ts(SPAN.start), _ts(SPAN.end))
BASELINE = (_ts(SPAN.baseline_start), _ts(SPAN.baseline_end))


def test_the_builtin_signals_are_entry_points() -> None:
    assert set(load_signals()) >= {"health-url", "rollbar", "logflare"}


def test_rollbar_degraded_above_the_threshold_and_the_baseline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ctx = _ctx(_rollbar({CURRENT: (50, 1000), BASELINE: (2, 1000)}, []), monkeypatch)
    signal = get_signal("rollbar")({"credential": "rollbar"}, "production")
    verdict = signal.verdict(ctx, SPAN)
    assert verdict.status == DEGRADED
    assert verdict.figures["error_rate"] == 0.05
    assert verdict.figures["baseline_error_rate"] == 0.002
    assert verdict.figures["threshold"] == 0.01  # production's default, from the strategy
    assert "5.00%" in verdict.reason and "threshold 1.00%" in verdict.reason
    assert TOKEN not in json.dumps(verdict.to_json())


def test_rollbar_ok_below_threshold_or_when_it_was_already_that_bad(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ctx = _ctx(_rollbar({CURRENT: (5, 1000), BASELINE: (2, 1000)}, []), monkeypatch)
    assert (
        get_signal("rollbar")({"credential": "rollbar"}, "production").verdict(ctx, SPAN).status
        == OK
    )
    # Staging's threshold is 2%; 3% that was 4% before the change is not the change's doing.
    ctx = _ctx(_rollbar({CURRENT: (30, 1000), BASELINE: (40, 1000)}, []), monkeypatch)
    staging = get_signal("rollbar")(
        {"credential": "rollbar", "environment": "production"}, "staging"
    )
    assert staging.verdict(ctx, SPAN).status == OK


def test_rollbar_new_critical_item_is_degraded(monkeypatch: pytest.MonkeyPatch) -> None:
    items = [
        {"counter": 7, "first_occurrence_timestamp": _ts(CHANGE + timedelta(hours=1))},
        {"counter": 3, "first_occurrence_timestamp": _ts(CHANGE - timedelta(days=9))},
    ]
    ctx = _ctx(_rollbar({CURRENT: (3, 1000), BASELINE: (2, 1000)}, items), monkeypatch)
    verdict = get_signal("rollbar")({"credential": "rollbar"}, "production").verdict(ctx, SPAN)
    assert verdict.status == DEGRADED
    assert verdict.figures["new_critical_items"] == [7]
    assert "new critical item" in verdict.reason


@pytest.mark.parametrize(
    "answer",
    [
        httpx.Response(503, headers={"Retry-After": "0"}),
        httpx.Response(401, json={"err": 1, "message": "invalid access token"}),
        httpx.Response(200, text="<html>"),
        httpx.Response(200, json={"err": 0, "result": {"rows": [{"level": "error"}]}}),
    ],
)
def test_rollbar_that_cannot_answer_is_unknown_never_ok(
    monkeypatch: pytest.MonkeyPatch, answer: httpx.Response
) -> None:
    ctx = _ctx(lambda _r: answer, monkeypatch)
    verdict = get_signal("rollbar")({"credential": "rollbar"}, "production").verdict(ctx, SPAN)
    assert verdict.status == UNKNOWN
    assert verdict.reason.startswith("Rollbar:") and TOKEN not in verdict.reason


def test_a_missing_token_is_unknown_and_says_where_it_comes_from(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ctx = _ctx(lambda _r: httpx.Response(500), monkeypatch)
    monkeypatch.delenv("ROLLBAR_READ_TOKEN")
    verdict = get_signal("rollbar")({"credential": "rollbar"}, "production").verdict(ctx, SPAN)
    assert verdict.status == UNKNOWN and "ROLLBAR_READ_TOKEN is not set" in verdict.reason


def test_logflare_counts_error_events(monkeypatch: pytest.MonkeyPatch) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["X-API-KEY"] == TOKEN
        assert request.url.path == "/api/endpoints/query/rotator.error-counts"
        assert request.url.params["environment"] == "production"
        start = datetime.fromisoformat(request.url.params["start"])
        row = (
            {"errors": 90, "events": 3000} if start == SPAN.start else {"errors": 6, "events": 3000}
        )
        return httpx.Response(200, json={"result": [row]})

    ctx = _ctx(handler, monkeypatch)
    signal = get_signal("logflare")({"credential": "rollbar"}, "production")
    verdict = signal.verdict(ctx, SPAN)
    assert verdict.status == DEGRADED and verdict.figures["error_rate"] == 0.03
    ctx = _ctx(lambda _r: httpx.Response(200, json={"result": []}), monkeypatch)
    assert signal.verdict(ctx, SPAN).status == UNKNOWN


def test_the_sandbox_counts_are_the_integral_of_the_rate() -> None:
    obs = Observability()
    t0 = datetime(2027, 1, 1, tzinfo=UTC)
    assert obs.counts("production", t0, t0 + timedelta(hours=1), 100) == (12, 6000)
    obs.set_rate("production", t0 + timedelta(minutes=30), 0.1)
    errors, events = obs.counts("production", t0, t0 + timedelta(hours=1), 100)
    assert (errors, events) == (306, 6000)
    assert obs.counts("staging", t0, t0 + timedelta(hours=1), 100) == (12, 6000)


# -- the inventory -----------------------------------------------------------------
def _with_signals(signals: list[dict[str, Any]], credentials: bool = True) -> dict[str, Any]:
    data = tomllib.loads(EXAMPLE.read_text())
    data["environments"]["production"]["signals"] = signals
    if credentials:
        data.setdefault("credentials", {})["rollbar_read_token"] = {"env": "ROLLBAR_READ_TOKEN"}
    return data


def test_signals_are_read_per_environment_with_defaults() -> None:
    inv = inventory.parse(_with_signals([{"kind": "rollbar", "credential": "rollbar_read_token"}]))
    (spec,) = inv.environments["production"].signals
    assert spec.kind == "rollbar" and spec.options["credential"] == "rollbar_read_token"
    assert inv.environments["staging"].signals == ()
    assert inv.signal_grace == "6h" and inv.emergency_monitoring == "0s"


def test_bad_signals_are_reported_at_once_with_key_paths() -> None:
    data = _with_signals(
        [
            {"kind": "rolbar"},
            {"kind": "rollbar", "credential": "nowhere", "max_error_rate": 5},
            {"kind": "logflare", "credential": {"value": TOKEN}, "endpont": "x"},
        ]
    )
    data["settings"]["signal_grace"] = "soon"
    with pytest.raises(InventoryError) as caught:
        inventory.parse(data)
    joined = "\n".join(caught.value.problems)
    ep = "environments.production.signals"
    assert f"{ep}[0].kind: found 'rolbar', expected one of health-url, logflare, rollbar" in joined
    assert f"{ep}[1].credential: found 'nowhere', expected the name of a [credentials]" in joined
    assert f"{ep}[1].max_error_rate: found 5" in joined
    assert f"{ep}[2].credential: found a dict (not shown)" in joined
    assert f"{ep}[2].endpont: unknown key" in joined
    assert "settings.signal_grace: found 'soon'" in joined
    assert TOKEN not in joined
    assert caught.value.exit_code == 3
