"""Stand in for the deployed application: one health endpoint per remote environment.

An environment is healthy only while every secret value deployed to it (the Workers
script's current secrets, and the variables of the Pages deployment now serving it) is
accepted by its provider. The sandbox re-evaluates both environments after every change
and keeps the record, so a test can prove production never failed during a rotation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rotator.sandbox.routing import Family, Reply, Request, Route, route

if TYPE_CHECKING:
    from rotator.sandbox.world import World


@dataclass(frozen=True)
class EnvironmentBinding:
    """Where an environment's values live in Cloudflare, and which OAuth client it uses."""

    name: str
    workers_script: str
    pages_project: str
    pages_config: str
    oauth_client_id: str
    # The git branch whose builds serve this environment (one preview config serves many).
    pages_branch: str = "main"


@dataclass(frozen=True)
class HealthRecord:
    time: datetime
    environment: str
    ok: bool
    failing: tuple[str, ...]
    cause: str

    def to_json(self) -> dict[str, Any]:
        return {
            "time": self.time.isoformat(),
            "env": self.environment,
            "ok": self.ok,
            "failing": list(self.failing),
            "cause": self.cause,
        }


DEFAULT_ENVIRONMENTS = (
    EnvironmentBinding(
        "staging",
        "bandofbakers-staging",
        "bandofbakers",
        "preview",
        "100000000002-bandofbakers-staging.apps.googleusercontent.com",
        "staging",
    ),
    EnvironmentBinding(
        "production",
        "bandofbakers-production",
        "bandofbakers",
        "production",
        "100000000003-bandofbakers-production.apps.googleusercontent.com",
    ),
)
LOCAL_OAUTH_CLIENT_ID = "100000000001-bandofbakers-local.apps.googleusercontent.com"


def deployed_secrets(world: World, binding: EnvironmentBinding) -> list[tuple[str, str]]:
    """Return (variable name, value) for every secret the environment runs with now."""
    found: list[tuple[str, str]] = []
    script = world.cloudflare.scripts.get(binding.workers_script)
    if script is not None:
        found.extend((name, text) for name, (_, text) in script.secrets.items())
    project = world.cloudflare.projects.get(binding.pages_project)
    live = project.live_deployment(binding.pages_config, binding.pages_branch) if project else None
    if live is not None:
        found.extend(
            (name, str(var.get("value", "")))
            for name, var in live.env_vars.items()
            if var.get("type") == "secret_text"
        )
    return found


def failing_secrets(world: World, binding: EnvironmentBinding) -> tuple[str, ...]:
    now = world.now()
    failing = {
        name
        for name, value in deployed_secrets(world, binding)
        if not (
            world.resend.accepts(value, now, world.profile.credential_propagation_delay)
            or world.stripe.accepts(value, now)
            or world.apikeys.accepts(value, now)
            or world.google.accepts(binding.oauth_client_id, value)
        )
    }
    return tuple(sorted(failing))


def _health(world: World, request: Request) -> Reply:
    binding = world.environments.get(request.params["env"])
    if binding is None:
        return health_error(404, f"no environment named {request.params['env']!r}")
    failing = failing_secrets(world, binding)
    if failing:
        return Reply.json(503, {"ok": False, "failing": list(failing)})
    return Reply.json(200, {"ok": True})


def health_error(status: int, message: str) -> Reply:
    return Reply.json(status, {"ok": False, "error": message})


FAMILY = Family("health", "/env", health_error, faultable=False)

ROUTES: list[Route] = [route("GET", "/env/{env}/api/health", _health)]
