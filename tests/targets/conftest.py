"""Fixtures for target tests: the fake Cloudflare, a recorded sleep, an HttpClient."""

from __future__ import annotations

import httpx
import pytest
from fake_cloudflare import FakeCloudflare, FakeCredentials, Sleeps

from providers.http import HttpClient


@pytest.fixture
def cloudflare() -> FakeCloudflare:
    return FakeCloudflare()


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def http(cloudflare: FakeCloudflare, sleeps: Sleeps) -> HttpClient:
    client = httpx.Client(transport=httpx.MockTransport(cloudflare), timeout=5.0)
    return HttpClient(client, max_attempts=3, max_inline_wait=30.0, sleep=sleeps, rng=lambda: 0.5)


@pytest.fixture
def credentials() -> FakeCredentials:
    return FakeCredentials()
