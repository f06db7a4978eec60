"""Let a test look inside the sandbox and steer it, under `/sandbox`. Never shows a value."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rotator.sandbox.faults import profile_from_json
from rotator.sandbox.routing import Family, Reply, Request, Route, route

if TYPE_CHECKING:
    from rotator.sandbox.world import World


def control_error(status: int, message: str) -> Reply:
    return Reply.json(status, {"error": message})


def state_summary(world: World) -> dict[str, Any]:
    """Count live credentials, requests and deployments; what tests assert invariants on."""
    now = world.now()
    clients = {
        client_id: {
            "environment": client.environment,
            "enabled_secrets": sum(s.enabled for s in client.secrets.values()),
            "secrets": len(client.secrets),
        }
        for client_id, client in world.google.clients.items()
    }
    deployments = {
        name: [
            {
                "id": d.id,
                "environment": d.environment,
                "stage": d.view()["latest_stage"]["name"],
                "status": d.view()["latest_stage"]["status"],
            }
            for d in project.deployments
        ]
        for name, project in world.cloudflare.projects.items()
    }
    return {
        "credentials": {
            "resend": len(world.resend.keys),
            "stripe": sum(k.accepted(now) for k in world.stripe.keys.values()),
            "gcp_api_keys": sum(k.live(now) for k in world.apikeys.keys.values()),
            "google_oauth": clients,
        },
        "workers": {
            name: {"version": script.version, "secrets": sorted(script.secrets)}
            for name, script in world.cloudflare.scripts.items()
        },
        "deployments": deployments,
        "requests": dict(sorted(world.requests.items())),
        "emails": len(world.resend.emails),
        "faults": world.profile.name,
    }


def _state(world: World, request: Request) -> Reply:
    return Reply.json(200, state_summary(world))


def _get_faults(world: World, request: Request) -> Reply:
    return Reply.json(200, world.profile.to_json())


def _set_faults(world: World, request: Request) -> Reply:
    try:
        profile = profile_from_json(request.json_object())
    except ValueError as exc:
        return control_error(400, str(exc))
    world.faults.set_profile(profile)
    return Reply.json(200, profile.to_json())


def _health_history(world: World, request: Request) -> Reply:
    return Reply.json(200, {"history": [record.to_json() for record in world.history]})


def _emails(world: World, request: Request) -> Reply:
    sent = [
        {
            "id": e.id,
            "from": e.sender,
            "to": e.to,
            "subject": e.subject,
            "text": e.text,
            "sent_at": e.sent_at.isoformat(),
        }
        for e in world.resend.emails
    ]
    return Reply.json(200, {"emails": sent})


FAMILY = Family("control", "/sandbox", control_error, faultable=False, counted=False)

ROUTES: list[Route] = [
    route("GET", "/sandbox/state", _state),
    route("GET", "/sandbox/faults", _get_faults),
    route("POST", "/sandbox/faults", _set_faults),
    route("GET", "/sandbox/health-history", _health_history),
    route("GET", "/sandbox/emails", _emails),
]
