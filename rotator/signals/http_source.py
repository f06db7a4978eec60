"""Shared by the Rollbar and Logflare signals: one read call, any failure is `unknown`."""

from __future__ import annotations

from typing import Any

import httpx

from providers.http import redact_url
from rotator.errors import RotatorError
from rotator.signals.base import SignalContext


class Unanswered(Exception):
    """The source did not give a usable answer; the message says why, without a value."""


def read_json(
    ctx: SignalContext,
    method: str,
    url: str,
    *,
    provider: str,
    operation: str,
    headers: dict[str, str],
    params: dict[str, Any] | None = None,
    body: Any = None,
) -> Any:
    shown = redact_url(url)
    try:
        response = ctx.http.request(
            method,
            url,
            provider=provider,
            operation=operation,
            idempotent=True,  # a read: retried on 429/5xx like any other
            headers=headers,
            params=params,
            json=body,
        )
    except RotatorError as exc:
        raise Unanswered(f"{method} {shown} did not answer: {exc}") from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise Unanswered(f"{method} {shown} could not be reached ({type(exc).__name__})") from None
    try:
        if response.status_code != 200:
            raise Unanswered(f"{method} {shown} answered {response.status_code}")
        try:
            return response.json()
        except ValueError:
            raise Unanswered(f"{method} {shown} answered something that is not JSON") from None
    finally:
        response.close()


def count(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise Unanswered(f"{what} is not a count")
    return int(value)
