"""Build Band of Bakers' starting world: one live credential per secret, all deployed.

The values are returned so the demo can `rotate import` them, the way a person imports the
credentials that exist before the tool takes over.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rotator.sandbox.environments import LOCAL_OAUTH_CLIENT_ID
from rotator.sandbox.google_oauth import OAuthClient

if TYPE_CHECKING:
    from rotator.sandbox.world import World

RESEND = "BANDOFBAKERS_RESEND_API_KEY"
STRIPE = "BANDOFBAKERS_STRIPE_SECRET_KEY"
GCP_IDENTITY = "BANDOFBAKERS_GCP_IDENTITY_PLATFORM_API_KEY"
GOOGLE_CLIENT_SECRET = "GOOGLE_CLIENT_SECRET"  # noqa: S105 (a variable name)
REFERRER = "https://bandofbakers.co.uk/*"
API_TARGETS = ("identitytoolkit.googleapis.com", "securetoken.googleapis.com")


@dataclass(frozen=True)
class SeededValue:
    """One credential of the starting world: where it belongs and how the provider names it.

    `environment` is None for a shared secret. `ref` is the provider's id for it (Resend key
    id, API key resource name, Stripe console key id, OAuth client secret id); `options`
    holds what the inventory needs to find it (`client_id`, `project`).
    """

    secret: str
    environment: str | None
    value: str = field(repr=False)
    ref: str
    options: Mapping[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.secret if self.environment is None else f"{self.secret}@{self.environment}"


def seed_bandofbakers(world: World) -> dict[str, SeededValue]:
    """Create the credentials, scripts and project; key the result by `SECRET[@env]`."""
    from rotator.sandbox.world import GCP_PROJECT

    now = world.now()
    if world.resend.keys or world.cloudflare.scripts:
        raise RuntimeError("the sandbox is already seeded")
    resend = world.resend.create("bandofbakers-production", "full_access", now)
    stripe = world.stripe.create("secret", True, now)
    restrictions: dict[str, Any] = {
        "browserKeyRestrictions": {"allowedReferrers": [REFERRER]},
        "apiTargets": [{"service": service} for service in API_TARGETS],
    }
    api_key = world.apikeys.create(
        GCP_PROJECT, "idp-web-initial", "Identity Platform web key", restrictions, now
    )
    seeded = [
        SeededValue(RESEND, None, resend.token, resend.id),
        SeededValue(STRIPE, None, stripe.secret, stripe.id),
        SeededValue(GCP_IDENTITY, None, api_key.key_string, api_key.name, {"project": GCP_PROJECT}),
    ]
    clients = {"local": LOCAL_OAUTH_CLIENT_ID} | {
        name: binding.oauth_client_id for name, binding in world.environments.items()
    }
    for environment, client_id in clients.items():
        client = OAuthClient(client_id, environment)
        world.google.clients[client_id] = client
        secret = client.add_secret(now)
        seeded.append(
            SeededValue(
                GOOGLE_CLIENT_SECRET, environment, secret.value, secret.id, {"client_id": client_id}
            )
        )
    result = {value.label: value for value in seeded}
    _deploy(world, result)
    world.mark_changed()
    world.record_health("seed")
    return result


def _deploy(world: World, seeded: Mapping[str, SeededValue]) -> None:
    """Put each remote environment's values in its Workers script and Pages deployment."""
    from rotator.sandbox.cloudflare import PagesProject, WorkersScript

    now = world.now()
    for name, binding in world.environments.items():
        values = {
            value.secret: value.value
            for value in seeded.values()
            if value.environment in (None, name)
        }
        script = world.cloudflare.scripts.setdefault(
            binding.workers_script, WorkersScript(binding.workers_script)
        )
        script.secrets.update({key: ("secret_text", text) for key, text in values.items()})
        script.new_version(now)
        project = world.cloudflare.projects.setdefault(
            binding.pages_project, PagesProject(binding.pages_project, now)
        )
        env_vars = project.deployment_configs[binding.pages_config].setdefault("env_vars", {})
        env_vars.update({key: {"type": "secret_text", "value": v} for key, v in values.items()})
        project.push(binding.pages_config, binding.pages_branch, "0" * 40, now)
