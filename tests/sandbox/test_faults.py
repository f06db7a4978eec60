"""Fault profiles: declared shares from a seeded RNG, shapes per API, runtime switching."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime

import httpx
import pytest

from rotator.sandbox import PROFILES, FaultProfile, Sandbox, SeededValue
from rotator.sandbox.faults import FaultInjector

NOW = datetime(2026, 1, 5, tzinfo=UTC)


def kinds(profile: str, draws: int, seed: int = 1) -> Counter[str]:
    injector = FaultInjector(PROFILES[profile], seed)
    counted: Counter[str] = Counter()
    for _ in range(draws):
        fault = injector.decide("stripe", NOW)
        counted[fault.kind if fault else "ok"] += 1
    return counted


@pytest.mark.parametrize(
    ("profile", "kind", "share"),
    [
        ("default", "429", 0.015),
        ("default", "503", 0.015),
        ("flaky-503", "503", 0.2),
        ("rate-limited", "429", 0.3),
        ("dropped", "drop", 0.1),
        ("none", "ok", 1.0),
    ],
)
def test_seeded_profiles_produce_their_declared_shares(
    profile: str, kind: str, share: float
) -> None:
    counted = kinds(profile, 20_000)
    assert counted[kind] / 20_000 == pytest.approx(share, abs=0.01)


def test_same_seed_same_faults() -> None:
    assert kinds("flaky-503", 500, seed=3) == kinds("flaky-503", 500, seed=3)
    assert kinds("flaky-503", 500, seed=3) != kinds("flaky-503", 500, seed=4)


def statuses(seed: int, count: int) -> list[int]:
    with (
        Sandbox(faults="flaky-503", seed=seed) as sandbox,
        httpx.Client(base_url=sandbox.base_url, verify=False) as client,
    ):
        return [client.get("/stripe/v1/balance").status_code for _ in range(count)]


def test_over_http_a_seeded_profile_repeats_and_keeps_its_share() -> None:
    first = statuses(seed=11, count=200)
    assert first == statuses(seed=11, count=200)
    assert set(first) == {401, 503}  # no key: every request that is not faulted gets 401
    assert first.count(503) / 200 == pytest.approx(0.2, abs=0.07)


def test_console_control_and_health_are_never_faulted(
    sandbox: Sandbox, client: httpx.Client, seeded: dict[str, SeededValue]
) -> None:
    sandbox.set_faults(FaultProfile(share_503=1.0))
    assert client.get("/stripe/v1/balance").status_code == 503
    assert client.get("/env/production/api/health").status_code == 200
    assert client.get("/console/stripe/keys").status_code == 200
    assert client.get("/sandbox/state").status_code == 200


def test_each_api_answers_faults_in_its_own_shape(sandbox: Sandbox, client: httpx.Client) -> None:
    sandbox.set_faults(FaultProfile(share_429=1.0, retry_after=3))
    resend = client.get("/resend/api-keys")
    assert resend.status_code == 429 and resend.json()["name"] == "rate_limit_exceeded"
    assert resend.headers["retry-after"] == "3" and resend.headers["ratelimit-remaining"] == "0"
    stripe = client.get("/stripe/v1/balance")
    assert stripe.json()["error"]["code"] == "rate_limit"
    google = client.get("/google/identitytoolkit/v1/projects")
    assert google.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    token = client.post("/google/oauth2/token", data={})
    assert token.status_code == 429 and "error" in token.json()
    sandbox.set_faults(FaultProfile(share_503=1.0))
    unavailable = client.get("/google/apikeys/v2/operations/x")
    assert unavailable.status_code == 503
    assert unavailable.json()["error"]["status"] == "UNAVAILABLE"


def test_dropped_connections_and_latency(sandbox: Sandbox, client: httpx.Client) -> None:
    sandbox.set_faults(FaultProfile(share_dropped=1.0))
    with pytest.raises(httpx.RemoteProtocolError):
        client.get("/stripe/v1/balance")
    sandbox.set_faults("latency-100ms")
    started = time.monotonic()
    client.get("/stripe/v1/balance")
    assert time.monotonic() - started >= 0.1


def test_profiles_switch_at_runtime_over_http(sandbox: Sandbox, client: httpx.Client) -> None:
    answer = client.post("/sandbox/faults", json={"profile": "default", "latency": 0})
    assert answer.status_code == 200 and answer.json()["share_503"] == 0.015
    assert sandbox.faults.name == "default"
    assert client.get("/sandbox/faults").json()["name"] == "default"
    switched = client.post("/sandbox/faults", json={"profile": "none", "pages_deploy_fails": True})
    assert switched.json()["pages_deploy_fails"] is True
    for bad in ({"profile": "chaos"}, {"share_503": 2.0}, {"latency": "slow"}, {"nope": 1}):
        refused = client.post("/sandbox/faults", json=bad)
        assert refused.status_code == 400 and refused.json()["error"]


def test_every_named_profile_is_valid() -> None:
    assert {"none", "default", "latency-100ms", "flaky-503", "rate-limited", "dropped"} <= set(
        PROFILES
    )
    assert {"cloudflare-block", "slow-lro"} <= set(PROFILES)
    assert all(name == profile.name for name, profile in PROFILES.items())
