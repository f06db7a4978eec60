"""Do over HTTP what a person does in a provider's dashboard, under `/console`.

Stripe keys and "Sign in with Google" client secrets have no public API, so the rotator
asks a person; in the demo and the tests, these endpoints are that person.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rotator.sandbox.google_oauth import SECRETS_PER_CLIENT, OAuthClient
from rotator.sandbox.observability import CONSOLE_ROUTES as SIGNAL_ROUTES
from rotator.sandbox.routing import Family, Reply, Request, Route, route

if TYPE_CHECKING:
    from rotator.sandbox.world import World


def console_error(status: int, message: str) -> Reply:
    return Reply.json(status, {"error": message})


def _create_stripe_key(world: World, request: Request) -> Reply:
    body = request.json_object()
    kind = body.get("type", "secret")
    live = body.get("live", True)
    permissions = body.get("permissions")
    if kind not in ("secret", "restricted") or not isinstance(live, bool):
        return console_error(400, 'type is "secret" or "restricted"; live is true or false')
    if permissions is not None and (
        not isinstance(permissions, list) or not all(isinstance(p, str) for p in permissions)
    ):
        return console_error(400, "permissions is a list of names such as rak_balance_read")
    granted = frozenset(permissions) if permissions is not None else None
    key = world.stripe.create(kind, live, world.now(), granted)
    world.mark_changed()
    return Reply.json(201, {**key.console_view(world.now()), "secret": key.secret})


def _list_stripe_keys(world: World, request: Request) -> Reply:
    now = world.now()
    return Reply.json(200, {"keys": [k.console_view(now) for k in world.stripe.keys.values()]})


def _expire_stripe_key(world: World, request: Request) -> Reply:
    body = request.json_object()
    delay = body.get("delay_seconds", world.profile.stripe_expiry_delay)
    if not isinstance(delay, int | float) or isinstance(delay, bool) or delay < 0:
        return console_error(400, "delay_seconds is a number of seconds, 0 or more")
    key = world.stripe.expire(request.params["key_id"], world.now(), float(delay))
    if key is None:
        return console_error(404, f"no Stripe key {request.params['key_id']!r}")
    world.mark_changed()
    return Reply.json(200, key.console_view(world.now()))


def _client(world: World, request: Request) -> OAuthClient | Reply:
    client = world.google.clients.get(request.params["client_id"])
    if client is None:
        return console_error(404, f"no OAuth client {request.params['client_id']!r}")
    return client


def _add_client_secret(world: World, request: Request) -> Reply:
    client = _client(world, request)
    if isinstance(client, Reply):
        return client
    if len(client.secrets) >= SECRETS_PER_CLIENT:
        return console_error(
            409, f"a client has at most {SECRETS_PER_CLIENT} secrets; delete one first"
        )
    secret = client.add_secret(world.now())
    world.mark_changed()
    return Reply.json(201, {**secret.console_view(), "client_secret": secret.value})


def _list_client_secrets(world: World, request: Request) -> Reply:
    client = _client(world, request)
    if isinstance(client, Reply):
        return client
    return Reply.json(200, {"secrets": [s.console_view() for s in client.secrets.values()]})


def _disable_client_secret(world: World, request: Request) -> Reply:
    client = _client(world, request)
    if isinstance(client, Reply):
        return client
    secret = client.secrets.get(request.params["secret_id"])
    if secret is None:
        return console_error(404, f"no secret {request.params['secret_id']!r} on this client")
    secret.enabled = False
    world.mark_changed()
    return Reply.json(200, secret.console_view())


def _delete_client_secret(world: World, request: Request) -> Reply:
    client = _client(world, request)
    if isinstance(client, Reply):
        return client
    secret = client.secrets.get(request.params["secret_id"])
    if secret is None:
        return console_error(404, f"no secret {request.params['secret_id']!r} on this client")
    if secret.enabled:
        return console_error(409, "disable the secret before deleting it, as the console asks")
    del client.secrets[secret.id]
    world.mark_changed()
    return Reply.json(200, {"id": secret.id, "deleted": True})


FAMILY = Family("console", "/console", console_error, faultable=False, counted=False)

_SECRETS = "/console/google/clients/{client_id}/secrets"
ROUTES: list[Route] = [
    route("POST", "/console/stripe/keys", _create_stripe_key),
    route("GET", "/console/stripe/keys", _list_stripe_keys),
    route("POST", "/console/stripe/keys/{key_id}/expire", _expire_stripe_key),
    route("POST", _SECRETS, _add_client_secret),
    route("GET", _SECRETS, _list_client_secrets),
    route("POST", _SECRETS + "/{secret_id}/disable", _disable_client_secret),
    route("DELETE", _SECRETS + "/{secret_id}", _delete_client_secret),
    *SIGNAL_ROUTES,
]
