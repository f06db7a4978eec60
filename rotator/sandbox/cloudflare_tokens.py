"""Emulate Cloudflare's user API tokens under `/cloudflare/client/v4/user/tokens`.

Verify, list, read, create, delete and roll, plus the permission groups. Sources (the
paths, bodies and the permission a caller needs) are listed in docs/contracts.md. The
value of a token is answered once, by create or roll, and never again; a rolled or
deleted value is refused at once by every endpoint (`CloudflareAccount.token_for`).
Managing tokens needs "API Tokens Write" (reading them "API Tokens Read" or Write).
"""

from __future__ import annotations

import secrets
import uuid
from typing import TYPE_CHECKING, Any

from rotator.sandbox.cloudflare import ApiToken, cloudflare_error, envelope
from rotator.sandbox.routing import Reply, Request, Route, route

if TYPE_CHECKING:
    from rotator.sandbox.cloudflare import CloudflareAccount
    from rotator.sandbox.world import World

INVALID_TOKEN = 1000
"""Cloudflare's code for a token it does not know (`GET /user/tokens/verify`)."""
# The sandbox's own ids for the permission groups it knows (Cloudflare's are listed by
# GET /user/tokens/permission_groups; only the names are relied on).
PERMISSION_GROUPS: dict[str, str] = {
    "Workers Scripts Write": "e086da7e2179491d91ee5f35b3ca210a",
    "Workers Scripts Read": "1a71c399035b4950a1bd1466bbe4f420",
    "Pages Write": "8d28297797f24fb8a0c332fe0866ec89",
    "Pages Read": "e247aedd66bd41cc9193af0213416666",
    "API Tokens Write": "686d18d5ac6c441c867cbf6771e58a0a",
    "API Tokens Read": "0cc3a61731504c89b99ec1be78b77aa0",
    "DNS Write": "4755a26eedb94da69e1066d98aa820be",
    "Account Settings Write": "1af1fa2adc104452b74a9a3364202f20",
}
SEEDED_TOKEN_NAME = "rotator (seeded)"  # noqa: S105 (a name)


def policies_for(account_id: str, names: list[str]) -> list[dict[str, Any]]:
    """Return one allow policy granting `names` on the account (and the user, for tokens)."""
    return [
        {
            "id": uuid.uuid4().hex,
            "effect": "allow",
            "resources": {f"com.cloudflare.api.account.{account_id}": "*"},
            "permission_groups": [{"id": PERMISSION_GROUPS[n], "name": n} for n in names],
        }
    ]


DEFAULT_PERMISSIONS = ["Workers Scripts Write", "Pages Write", "API Tokens Write"]


def seed_token(account: CloudflareAccount) -> ApiToken:
    """Register the account's seeded `api_token` as a token with the tool's permissions."""
    token = ApiToken(
        uuid.uuid4().hex,
        SEEDED_TOKEN_NAME,
        account.api_token,
        policies_for(account.account_id, DEFAULT_PERMISSIONS),
        "2026-01-01T00:00:00Z",
    )
    account.tokens[token.id] = token
    return token


def live_tokens(account: CloudflareAccount) -> list[ApiToken]:
    return [t for t in account.tokens.values() if t.status == "active"]


def _granted(token: ApiToken) -> set[str]:
    return {
        str(group.get("name"))
        for policy in token.policies
        if policy.get("effect") == "allow"
        for group in policy.get("permission_groups") or []
    }


def _caller(world: World, request: Request, *, write: bool) -> ApiToken | Reply:
    value = request.bearer()
    token = world.cloudflare.token_for(value) if value else None
    if token is None:
        return cloudflare_error(401, "Invalid API Token", INVALID_TOKEN)
    granted = _granted(token)
    needed = {"API Tokens Write"} if write else {"API Tokens Write", "API Tokens Read"}
    if not granted & needed:
        return cloudflare_error(403, "Unauthorized to access requested resource", 9109)
    return token


def _stamp(world: World) -> str:
    return world.now().strftime("%Y-%m-%dT%H:%M:%SZ")


def view(token: ApiToken) -> dict[str, Any]:
    """A token as Cloudflare shows it: never its value."""
    return {
        "id": token.id,
        "name": token.name,
        "status": token.status,
        "issued_on": token.issued_on,
        "modified_on": token.issued_on,
        "policies": token.policies,
        "condition": {},
    }


def _verify(world: World, request: Request) -> Reply:
    value = request.bearer()
    token = world.cloudflare.token_for(value) if value else None
    if token is None:
        return cloudflare_error(401, "Invalid API Token", INVALID_TOKEN)
    return Reply.json(
        200,
        envelope(
            {"id": token.id, "status": "active"},
            messages=[{"code": 10000, "message": "This API Token is valid and active"}],
        ),
    )


def _list(world: World, request: Request) -> Reply:
    caller = _caller(world, request, write=False)
    if isinstance(caller, Reply):
        return caller
    shown = [view(t) for t in live_tokens(world.cloudflare)]
    info = {"page": 1, "per_page": 50, "count": len(shown), "total_count": len(shown)}
    return Reply.json(200, envelope(shown, result_info=info))


def _token(world: World, request: Request, *, write: bool) -> ApiToken | Reply:
    caller = _caller(world, request, write=write)
    if isinstance(caller, Reply):
        return caller
    token = world.cloudflare.tokens.get(request.params["token"])
    if token is None or token.status != "active":
        return cloudflare_error(404, "Token not found", 1003)
    return token


def _get(world: World, request: Request) -> Reply:
    token = _token(world, request, write=False)
    if isinstance(token, Reply):
        return token
    return Reply.json(200, envelope(view(token)))


def _policy_problem(policies: Any) -> str | None:
    if not isinstance(policies, list) or not policies:
        return "policies must be a non-empty list"
    for policy in policies:
        if not isinstance(policy, dict) or policy.get("effect") not in ("allow", "deny"):
            return "each policy needs an effect of allow or deny"
        if not isinstance(policy.get("resources"), dict) or not policy["resources"]:
            return "each policy needs resources"
        groups = policy.get("permission_groups")
        if not isinstance(groups, list) or not groups:
            return "each policy needs permission_groups"
        known = set(PERMISSION_GROUPS.values())
        for group in groups:
            if not isinstance(group, dict) or group.get("id") not in known:
                return "unknown permission group id"
    return None


def _create(world: World, request: Request) -> Reply:
    caller = _caller(world, request, write=True)
    if isinstance(caller, Reply):
        return caller
    body = request.json_object()
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        return cloudflare_error(400, "name is required", 1001)
    problem = _policy_problem(body.get("policies"))
    if problem:
        return cloudflare_error(400, problem, 1001)
    names = {v: k for k, v in PERMISSION_GROUPS.items()}
    policies = [
        {
            "id": uuid.uuid4().hex,
            "effect": p["effect"],
            "resources": dict(p["resources"]),
            "permission_groups": [
                {"id": g["id"], "name": names[g["id"]]} for g in p["permission_groups"]
            ],
        }
        for p in body["policies"]
    ]
    token = ApiToken(uuid.uuid4().hex, name, secrets.token_urlsafe(30), policies, _stamp(world))
    world.cloudflare.tokens[token.id] = token
    world.mark_changed()
    return Reply.json(200, envelope({**view(token), "value": token.value}))


def _delete(world: World, request: Request) -> Reply:
    token = _token(world, request, write=True)
    if isinstance(token, Reply):
        return token
    token.status = "deleted"
    world.mark_changed()
    return Reply.json(200, envelope({"id": token.id}))


def _roll(world: World, request: Request) -> Reply:
    """Give the token a new value; the old value is refused from this moment."""
    token = _token(world, request, write=True)
    if isinstance(token, Reply):
        return token
    request.json_object()
    token.value = secrets.token_urlsafe(30)
    token.issued_on = _stamp(world)
    world.mark_changed()
    return Reply.json(200, envelope(token.value))


def _permission_groups(world: World, request: Request) -> Reply:
    caller = _caller(world, request, write=False)
    if isinstance(caller, Reply):
        return caller
    groups = [
        {"id": gid, "name": name, "scopes": ["com.cloudflare.api.account"]}
        for name, gid in PERMISSION_GROUPS.items()
    ]
    return Reply.json(200, envelope(groups))


_TOKENS = "/cloudflare/client/v4/user/tokens"
ROUTES: list[Route] = [
    route("GET", _TOKENS + "/verify", _verify),
    route("GET", _TOKENS + "/permission_groups", _permission_groups),
    route("GET", _TOKENS, _list),
    route("POST", _TOKENS, _create),
    route("GET", _TOKENS + "/{token}", _get),
    route("DELETE", _TOKENS + "/{token}", _delete),
    route("PUT", _TOKENS + "/{token}/value", _roll),
]
