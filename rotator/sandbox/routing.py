"""Match a request to the handler of one emulated API, by method and path template.

Every emulated API is a `Family`: a path prefix, the error shape its clients expect, and
whether fault injection may touch it. Handlers never build error bodies by hand for the
cases the router handles (unknown path, wrong method, unreadable body, injected faults), so
each API's errors keep one shape.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

if TYPE_CHECKING:
    from rotator.sandbox.world import World


class BadBodyError(Exception):
    """The request body is not the JSON object or form the endpoint reads."""


@dataclass
class Request:
    """One HTTP request as a handler sees it; header names are lower-case."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def bearer(self) -> str | None:
        """Return the token of `Authorization: Bearer ...`, if that is what was sent."""
        scheme, _, token = (self.header("authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return token.strip()

    def basic_credentials(self) -> tuple[str, str] | None:
        """Return user and password of `Authorization: Basic ...`, if that is what was sent."""
        scheme, _, encoded = (self.header("authorization") or "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except ValueError:
            return None
        user, _, password = decoded.partition(":")
        return user, password

    def basic_user(self) -> str | None:
        """Return the user name of HTTP Basic auth (Stripe puts the key there)."""
        credentials = self.basic_credentials()
        return credentials[0] or None if credentials else None

    def json_object(self) -> dict[str, Any]:
        """Return the body as a JSON object; an empty body counts as `{}`."""
        if not self.body.strip():
            return {}
        try:
            payload = json.loads(self.body)
        except ValueError as exc:
            raise BadBodyError("the request body is not valid JSON") from exc
        if not isinstance(payload, dict):
            raise BadBodyError("the request body must be a JSON object")
        return payload

    def form(self) -> dict[str, str]:
        """Return an `application/x-www-form-urlencoded` body (the OAuth token endpoint)."""
        try:
            return dict(parse_qsl(self.body.decode("utf-8"), keep_blank_values=True))
        except UnicodeDecodeError as exc:
            raise BadBodyError("the request body is not valid form data") from exc


@dataclass
class Reply:
    """One HTTP response; `drop` closes the connection without sending anything."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False

    @classmethod
    def json(cls, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Reply:
        return cls(status, json.dumps(payload).encode("utf-8"), headers=dict(headers or {}))


Handler = Callable[["World", Request], Reply]
ErrorShape = Callable[[int, str], Reply]


@dataclass(frozen=True)
class Family:
    """One emulated API: where it lives, how it answers errors, whether faults apply."""

    name: str
    prefix: str
    error: ErrorShape
    faultable: bool = True
    counted: bool = True
    extra_headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    handler: Handler
    pattern: re.Pattern[str]

    @property
    def key(self) -> str:
        return f"{self.method} {self.template}"


def route(method: str, template: str, handler: Handler) -> Route:
    """Build a route; `{name}` matches one path segment up to a `/` or a `:` (Google verbs)."""
    regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/:]+)", re.escape(template))
    return Route(method, template, handler, re.compile(f"^{regex}$"))


@dataclass
class Match:
    family: Family
    route: Route | None
    params: dict[str, str]
    error: Reply | None = None

    @property
    def key(self) -> str:
        return self.route.key if self.route else "<unmatched>"


class Router:
    """Find the family and route of a path; unknown paths and methods get the family's error."""

    def __init__(self, fallback: Family) -> None:
        self._families: list[tuple[Family, list[Route]]] = []
        self._fallback = fallback

    def add(self, family: Family, routes: list[Route]) -> None:
        self._families.append((family, routes))
        # Longest prefix first, so `/google/apikeys` is never taken by a shorter prefix.
        self._families.sort(key=lambda item: len(item[0].prefix), reverse=True)

    def match(self, method: str, path: str) -> Match:
        for family, routes in self._families:
            if path != family.prefix and not path.startswith(family.prefix + "/"):
                continue
            allowed = False
            for candidate in routes:
                found = candidate.pattern.match(path)
                if found is None:
                    continue
                if candidate.method == method:
                    return Match(family, candidate, found.groupdict())
                allowed = True
            if allowed:
                return Match(family, None, {}, family.error(405, "method not allowed"))
            return Match(family, None, {}, family.error(404, f"no route for {method} {path}"))
        fallback = self._fallback
        return Match(fallback, None, {}, fallback.error(404, f"no route for {method} {path}"))
