"""Issue 13.6: one Cloudflare budget for every runner process, kept in the store."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from providers.http import CallRecord
from rotator.errors import RetryLaterError
from rotator.store.cloudflare_budget import CloudflareBudget, ratelimit
from rotator.store.db import Store, open_store


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2027, 1, 5, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def _opener(url: str) -> Callable[[], Store]:
    store = open_store(url)
    return lambda: store


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'rotator.db'}"


def test_two_processes_share_one_window(store_url: str) -> None:
    clock = Clock()
    # Two runners, each with its own store connection, as two processes would have.
    first = CloudflareBudget(_opener(store_url), share=30, batch=10, now=clock)
    second = CloudflareBudget(_opener(store_url), share=30, batch=10, now=clock)
    for _ in range(20):
        first.take()
    for _ in range(10):
        second.take()
    with pytest.raises(RetryLaterError) as caught:
        second.take()
    assert caught.value.retry_after == 300.0
    assert "shared by every runner" in str(caught.value)
    clock.now += timedelta(seconds=300)
    second.take()  # a new window


def test_a_429_blocks_every_runner_for_five_minutes(store_url: str) -> None:
    clock = Clock()
    first = CloudflareBudget(_opener(store_url), batch=1, now=clock)
    second = CloudflareBudget(_opener(store_url), batch=1, now=clock)
    first.observe(
        CallRecord("cloudflare-workers", "put secrets", "PATCH", "https://x", 429, 1, "retry")
    )
    with pytest.raises(RetryLaterError, match="blocking") as caught:
        second.take()
    assert caught.value.retry_after == 300.0
    clock.now += timedelta(seconds=301)
    second.take()


def test_a_low_ratelimit_header_stops_before_cloudflare_blocks(store_url: str) -> None:
    clock = Clock()
    budget = CloudflareBudget(_opener(store_url), batch=1, now=clock)
    budget.observe_headers({"ratelimit": '"default";r=500;t=120'})
    budget.take()
    budget.observe_headers({"ratelimit": '"default";r=40;t=120'})
    with pytest.raises(RetryLaterError) as caught:
        budget.take()
    assert caught.value.retry_after == 120.0


def test_the_default_share_leaves_room_below_the_ceiling(store_url: str) -> None:
    budget = CloudflareBudget(_opener(store_url))
    assert budget.share < 1200
    with pytest.raises(ValueError, match="between 1 and 1200"):
        CloudflareBudget(_opener(store_url), share=1500)


def test_ratelimit_header_forms() -> None:
    assert ratelimit('"default";r=50;t=30') == (50, 30)
    assert ratelimit('"default";t=30;r=50') == (50, 30)
    assert ratelimit("garbage") is None
    assert ratelimit(None) is None


def test_a_spent_share_is_waited_out_not_failed(store_url: str) -> None:
    clock = Clock()
    slept: list[float] = []
    said: list[str] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.now += timedelta(seconds=seconds)

    budget = CloudflareBudget(
        _opener(store_url),
        share=5,
        batch=5,
        now=clock,
        sleep=sleep,
        max_wait=330,
        progress=said.append,
    )
    for _ in range(6):
        budget.take()
    assert slept == [300.0]
    assert "is spent; waiting 300s" in said[0]


def test_a_wait_longer_than_allowed_goes_to_the_engine(store_url: str) -> None:
    clock = Clock()
    budget = CloudflareBudget(
        _opener(store_url), batch=1, now=clock, sleep=lambda _s: None, max_wait=60
    )
    budget.block(300)
    with pytest.raises(RetryLaterError, match="blocking"):
        budget.take()


def test_a_429_with_retry_after_blocks_for_as_long_as_it_says(store_url: str) -> None:
    clock = Clock()
    budget = CloudflareBudget(_opener(store_url), batch=1, now=clock)
    budget.observe(
        CallRecord("cloudflare-pages", "set vars", "PATCH", "https://x", 429, 1, "retry", 7.0)
    )
    with pytest.raises(RetryLaterError) as caught:
        budget.take()
    assert caught.value.retry_after == 7.0
    clock.now += timedelta(seconds=8)
    budget.take()
