"""The request hook lets a crash test stop a client at request N, before or after it applied."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from rotator.sandbox import DropConnectionError, Sandbox

Call = tuple[int, str, str, str]


@pytest.fixture
def calls() -> list[Call]:
    return []


@pytest.fixture
def hooked(calls: list[Call]) -> Iterator[tuple[Sandbox, httpx.Client, dict[str, str]]]:
    def hook(n: int, method: str, path: str, phase: str) -> None:
        calls.append((n, method, path, phase))
        if n == 3 and phase == "after":
            raise DropConnectionError

    with Sandbox(faults="none", on_request=hook) as sandbox:
        seeded = sandbox.seed_bandofbakers()
        token = seeded["BANDOFBAKERS_RESEND_API_KEY"].value
        with httpx.Client(base_url=sandbox.base_url, verify=False) as client:
            yield sandbox, client, {"Authorization": f"Bearer {token}"}


def test_hook_sees_each_provider_request_before_and_after(
    hooked: tuple[Sandbox, httpx.Client, dict[str, str]], calls: list[Call]
) -> None:
    _, client, auth = hooked
    client.get("/resend/api-keys", headers=auth)
    client.get("/sandbox/state")  # control: not counted
    client.post("/console/stripe/keys", json={})  # console: not counted
    client.get("/env/staging/api/health?probe=1")
    assert calls == [
        (1, "GET", "/resend/api-keys", "before"),
        (1, "GET", "/resend/api-keys", "after"),
        (2, "GET", "/env/staging/api/health", "before"),
        (2, "GET", "/env/staging/api/health", "after"),
    ]


def test_a_crash_after_applying_loses_the_answer_but_not_the_change(
    hooked: tuple[Sandbox, httpx.Client, dict[str, str]], calls: list[Call]
) -> None:
    sandbox, client, auth = hooked
    client.get("/resend/api-keys", headers=auth)
    client.get("/resend/api-keys", headers=auth)
    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/resend/api-keys", json={"name": "rotation-42"}, headers=auth)
    names = [k["name"] for k in client.get("/resend/api-keys", headers=auth).json()["data"]]
    assert "rotation-42" in names
    assert sandbox.state()["credentials"]["resend"] == 2
