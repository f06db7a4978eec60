"""Fixtures: a seeded sandbox without faults on a clock the test moves, and a client for it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from rotator.sandbox import Sandbox, SeededValue


class SteppingClock:
    """A clock that stands still until the test moves it."""

    def __init__(self) -> None:
        self.now = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> SteppingClock:
    return SteppingClock()


@pytest.fixture
def sandbox(clock: SteppingClock) -> Iterator[Sandbox]:
    with Sandbox(faults="none", seed=7, clock=clock) as running:
        yield running


@pytest.fixture
def seeded(sandbox: Sandbox) -> dict[str, SeededValue]:
    return sandbox.seed_bandofbakers()


@pytest.fixture
def client(sandbox: Sandbox) -> Iterator[httpx.Client]:
    # Plain HTTP to 127.0.0.1: skipping certificate loading saves ~40 ms a test.
    with httpx.Client(base_url=sandbox.base_url, timeout=5, verify=False) as http:
        yield http
