"""Stand in for Rollbar and Logflare: the app's errors per environment, on the world's clock.

Each environment sends a steady stream (Rollbar occurrences of every level, Logflare
events) with a share at error level that is piecewise constant in time: 0.2% until a
person raises it from the console (`POST /console/signals/{env}/error-rate`). Counts over
any span are computed from those pieces, so simulated months cost nothing and the same
question always gets the same answer. `POST /console/signals/{source}/outage` makes Rollbar
or Logflare answer 503, for the "source unreachable" path.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rotator.sandbox.routing import Family, Reply, Request, Route, route

if TYPE_CHECKING:
    from rotator.sandbox.world import World

BASE_ERROR_RATE = 0.002
ROLLBAR_PER_MINUTE = 50.0
LOGFLARE_PER_MINUTE = 200.0
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass
class CriticalItem:
    counter: int
    environment: str
    first_seen: datetime


@dataclass
class Observability:
    """Error-rate history per environment, tokens, critical items and outages."""

    rollbar_token: str = field(default_factory=lambda: "rb_read_" + secrets.token_hex(16))
    logflare_key: str = field(default_factory=lambda: "lf_" + secrets.token_hex(16))
    changes: dict[str, list[tuple[datetime, float]]] = field(default_factory=dict)
    items: list[CriticalItem] = field(default_factory=list)
    outages: set[str] = field(default_factory=set)

    def set_rate(self, env: str, since: datetime, rate: float) -> None:
        self.changes.setdefault(env, []).append((since, rate))
        self.changes[env].sort(key=lambda c: c[0])

    def counts(
        self, env: str, start: datetime, end: datetime, per_minute: float
    ) -> tuple[int, int]:
        """(errors, events) of `env` between `start` and `end`."""
        if end <= start:
            return 0, 0
        pieces = [(_EPOCH, BASE_ERROR_RATE), *self.changes.get(env, [])]
        errors = 0.0
        for i, (since, rate) in enumerate(pieces):
            until = pieces[i + 1][0] if i + 1 < len(pieces) else end
            lo, hi = max(since, start), min(until, end)
            if hi > lo:
                errors += (hi - lo).total_seconds() / 60 * per_minute * rate
        events = (end - start).total_seconds() / 60 * per_minute
        return round(errors), round(events)

    def error_rate(self, env: str, at: datetime) -> float:
        rate = BASE_ERROR_RATE
        for since, r in self.changes.get(env, []):
            if since <= at:
                rate = r
        return rate


def observability_error(status: int, message: str) -> Reply:
    return Reply.json(status, {"err": 1, "message": message})


def _down(world: World, source: str) -> Reply | None:
    if source in world.observability.outages:
        return Reply.json(503, {"err": 1, "message": f"{source} is down"}, {"Retry-After": "0"})
    return None


def _rollbar_auth(world: World, request: Request) -> Reply | None:
    down = _down(world, "rollbar")
    if down is not None:
        return down
    if request.header("x-rollbar-access-token") != world.observability.rollbar_token:
        return observability_error(401, "invalid access token")
    return None


def _metrics_occurrences(world: World, request: Request) -> Reply:
    refused = _rollbar_auth(world, request)
    if refused is not None:
        return refused
    body = request.json_object()
    start, end = body.get("start_time"), body.get("end_time")
    if not isinstance(start, int) or not isinstance(end, int) or end < start:
        return observability_error(422, "start_time and end_time are Unix seconds")
    env = None
    for f in body.get("filters") or []:
        if isinstance(f, dict) and f.get("field") == "environment":
            env = f.get("value")
    if body.get("group_by") != ["level"] or not isinstance(env, str):
        return observability_error(422, "the sandbox answers an environment filter by level")
    lo = datetime.fromtimestamp(start, UTC)
    hi = datetime.fromtimestamp(end, UTC)
    errors, events = world.observability.counts(env, lo, hi, ROLLBAR_PER_MINUTE)
    rows = [
        {"level": "error", "count": errors},
        {"level": "info", "count": events - errors},
    ]
    return Reply.json(200, {"err": 0, "result": {"rows": rows, "columns": ["level", "count"]}})


def _items(world: World, request: Request) -> Reply:
    refused = _rollbar_auth(world, request)
    if refused is not None:
        return refused
    env = request.query.get("environment")
    level = request.query.get("level")
    items = [
        {
            "id": 900000 + item.counter,
            "counter": item.counter,
            "environment": item.environment,
            "level": "critical",
            "status": "active",
            "title": "Server Action failed",
            "first_occurrence_timestamp": int(item.first_seen.timestamp()),
        }
        for item in world.observability.items
        if (env is None or item.environment == env) and level in (None, "critical")
    ]
    return Reply.json(200, {"err": 0, "result": {"page": 1, "items": items}})


def _logflare_query(world: World, request: Request) -> Reply:
    down = _down(world, "logflare")
    if down is not None:
        return down
    if request.header("x-api-key") != world.observability.logflare_key:
        return Reply.json(401, {"error": "Unauthorized"})
    try:
        env = request.query["environment"]
        lo = datetime.fromisoformat(request.query["start"])
        hi = datetime.fromisoformat(request.query["end"])
    except (KeyError, ValueError):
        return Reply.json(400, {"error": "environment, start and end (ISO 8601) are required"})
    errors, events = world.observability.counts(env, lo, hi, LOGFLARE_PER_MINUTE)
    return Reply.json(200, {"result": [{"errors": errors, "events": events}]})


# -- the console: what a person (or a bad deploy) does ---------------------------------
def _set_error_rate(world: World, request: Request) -> Reply:
    env = request.params["env"]
    if env not in world.environments:
        known = ", ".join(sorted(world.environments))
        return Reply.json(404, {"error": f"no environment {env!r}; the sandbox has {known}"})
    body = request.json_object()
    rate = body.get("rate")
    if not isinstance(rate, int | float) or isinstance(rate, bool) or not 0 <= rate <= 1:
        return Reply.json(400, {"error": "rate is a fraction from 0 to 1, e.g. 0.05 for 5%"})
    now = world.now()
    world.observability.set_rate(env, now, float(rate))
    critical = body.get("critical", False)
    if critical is True:
        counter = len(world.observability.items) + 1
        world.observability.items.append(CriticalItem(counter, env, now))
    return Reply.json(200, {"environment": env, "rate": rate, "since": now.isoformat()})


def _set_outage(world: World, request: Request) -> Reply:
    source = request.params["source"]
    if source not in ("rollbar", "logflare"):
        return Reply.json(404, {"error": "the sources are rollbar and logflare"})
    down = request.json_object().get("down", True)
    if not isinstance(down, bool):
        return Reply.json(400, {"error": "down is true or false"})
    (world.observability.outages.add if down else world.observability.outages.discard)(source)
    return Reply.json(200, {"source": source, "down": down})


def _signals_state(world: World, request: Request) -> Reply:
    now = world.now()
    state: dict[str, Any] = {
        env: {"error_rate": world.observability.error_rate(env, now)} for env in world.environments
    }
    return Reply.json(200, {"environments": state, "outages": sorted(world.observability.outages)})


ROLLBAR = Family("rollbar", "/rollbar", observability_error, faultable=False, counted=False)
ROLLBAR_ROUTES: list[Route] = [
    route("POST", "/rollbar/api/1/metrics/occurrences", _metrics_occurrences),
    route("GET", "/rollbar/api/1/items", _items),
]
LOGFLARE = Family("logflare", "/logflare", observability_error, faultable=False, counted=False)
LOGFLARE_ROUTES: list[Route] = [
    route("GET", "/logflare/api/endpoints/query/{endpoint}", _logflare_query),
]
CONSOLE_ROUTES: list[Route] = [
    route("POST", "/console/signals/{env}/error-rate", _set_error_rate),
    route("POST", "/console/signals/{source}/outage", _set_outage),
    route("GET", "/console/signals", _signals_state),
]
