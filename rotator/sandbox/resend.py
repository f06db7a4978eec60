"""Emulate Resend's API keys and email sending under `/resend` (PROVIDERS.md §1)."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from rotator.sandbox.routing import Family, Reply, Request, Route, route

if TYPE_CHECKING:
    from rotator.sandbox.world import World

PERMISSIONS = ("full_access", "sending_access")
NAME_LIMIT = 50

_ERROR_NAMES = {
    400: "validation_error",
    401: "missing_api_key",
    403: "invalid_api_key",
    404: "not_found",
    405: "method_not_allowed",
    422: "validation_error",
    429: "rate_limit_exceeded",
    500: "internal_server_error",
    503: "application_error",
}


def resend_error(status: int, message: str, name: str | None = None) -> Reply:
    payload = {"statusCode": status, "name": name or _ERROR_NAMES.get(status, "application_error")}
    payload["message"] = message
    headers = {"ratelimit-remaining": "0"} if status == 429 else {}
    return Reply.json(status, payload, headers)


@dataclass
class ResendKey:
    id: str
    name: str
    token: str
    permission: str
    created_at: datetime
    domain_id: str | None = None
    last_used_at: datetime | None = None

    def listed(self) -> dict[str, Any]:
        last_used = self.last_used_at.isoformat() if self.last_used_at else None
        created = self.created_at.isoformat()
        return {"id": self.id, "name": self.name, "created_at": created, "last_used_at": last_used}


@dataclass
class SentEmail:
    id: str
    sender: str
    to: list[str]
    subject: str
    text: str
    sent_at: datetime


@dataclass
class ResendAccount:
    """The team's keys (newest last) and the emails sent, for notification tests."""

    keys: dict[str, ResendKey] = field(default_factory=dict)
    emails: list[SentEmail] = field(default_factory=list)

    def create(self, name: str, permission: str, now: datetime) -> ResendKey:
        key = ResendKey(str(uuid.uuid4()), name, "re_" + secrets.token_urlsafe(24), permission, now)
        self.keys[key.id] = key
        return key

    def by_token(self, token: str) -> ResendKey | None:
        return next((k for k in self.keys.values() if secrets.compare_digest(k.token, token)), None)

    def accepts(self, value: str, now: datetime | None = None, delay: float = 0.0) -> bool:
        key = self.by_token(value)
        return key is not None and not (now and propagating(key.created_at, now, delay))


def propagating(created: datetime, now: datetime, delay: float) -> bool:
    """Return True while a new credential is not yet accepted everywhere."""
    return delay > 0 and (now - created).total_seconds() < delay


def _authorise(world: World, request: Request, *, managing: bool) -> ResendKey | Reply:
    """Check the caller the way Resend does: Cloudflare's User-Agent rule first, then the key."""
    if not (request.header("user-agent") or "").strip():
        # Resend sits behind Cloudflare, which refuses clients without a User-Agent (1010).
        return Reply(403, b"error code: 1010", content_type="text/plain")
    token = request.bearer()
    if token is None:
        return resend_error(
            401,
            "Missing API key in the authorization header. Include the following header "
            "Authorization: Bearer YOUR_API_KEY in the request.",
            "missing_api_key",
        )
    key = world.resend.by_token(token)
    if key is not None and propagating(
        key.created_at, world.now(), world.profile.credential_propagation_delay
    ):
        key = None
    if key is None:
        if world.profile.resend_invalid_key == "invalid_api_key":
            return resend_error(403, "API key is invalid", "invalid_api_key")
        return resend_error(400, "API key is invalid", "validation_error")
    if managing and key.permission != "full_access":
        return resend_error(
            401, "This API key is restricted to only send emails", "restricted_api_key"
        )
    key.last_used_at = world.now()
    return key


def _create_key(world: World, request: Request) -> Reply:
    caller = _authorise(world, request, managing=True)
    if isinstance(caller, Reply):
        return caller
    body = request.json_object()
    name = body.get("name")
    if name is None:
        return resend_error(422, "Missing `name` field.", "missing_required_field")
    if not isinstance(name, str) or not name or len(name) > NAME_LIMIT:
        return resend_error(400, f"The `name` field must be 1 to {NAME_LIMIT} characters.")
    permission = body.get("permission", "full_access")
    if permission not in PERMISSIONS:
        return resend_error(
            422, "Access must be 'full_access' | 'sending_access'", "invalid_access"
        )
    key = world.resend.create(name, permission, world.now())
    domain_id = body.get("domain_id")
    key.domain_id = domain_id if isinstance(domain_id, str) else None
    world.mark_changed()
    return Reply.json(201, {"id": key.id, "token": key.token})


def _list_keys(world: World, request: Request) -> Reply:
    caller = _authorise(world, request, managing=True)
    if isinstance(caller, Reply):
        return caller
    raw_limit = request.query.get("limit", "20")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 100:
        return resend_error(
            422, "The `limit` parameter must be between 1 and 100.", "invalid_parameter"
        )
    limit = int(raw_limit)
    newest_first = list(reversed(world.resend.keys.values()))
    ids = [key.id for key in newest_first]
    after, before = request.query.get("after"), request.query.get("before")
    if after is not None and before is not None:
        return resend_error(422, "Use either `after` or `before`, not both.", "invalid_parameter")
    if after is not None:
        if after not in ids:
            return resend_error(422, "The `after` cursor is not a known id.", "invalid_parameter")
        rest = newest_first[ids.index(after) + 1 :]
        page, has_more = rest[:limit], len(rest) > limit
    elif before is not None:
        if before not in ids:
            return resend_error(422, "The `before` cursor is not a known id.", "invalid_parameter")
        rest = newest_first[: ids.index(before)]
        page, has_more = rest[-limit:], len(rest) > limit
    else:
        page, has_more = newest_first[:limit], len(newest_first) > limit
    data = [key.listed() for key in page]
    return Reply.json(200, {"object": "list", "has_more": has_more, "data": data})


def _update_key(world: World, request: Request) -> Reply:
    caller = _authorise(world, request, managing=True)
    if isinstance(caller, Reply):
        return caller
    key = world.resend.keys.get(request.params["key_id"])
    if key is None:
        return resend_error(404, "API key not found")
    name = request.json_object().get("name")
    if not isinstance(name, str) or not name or len(name) > NAME_LIMIT:
        return resend_error(400, f"The `name` field must be 1 to {NAME_LIMIT} characters.")
    key.name = name
    world.mark_changed()
    return Reply.json(200, {"object": "api_key", "id": key.id})


def _delete_key(world: World, request: Request) -> Reply:
    caller = _authorise(world, request, managing=True)
    if isinstance(caller, Reply):
        return caller
    key = world.resend.keys.pop(request.params["key_id"], None)
    if key is None:
        return resend_error(404, "API key not found")
    world.mark_changed()
    return Reply.json(200, {"object": "api_key", "id": key.id, "deleted": True})


def _send_email(world: World, request: Request) -> Reply:
    caller = _authorise(world, request, managing=False)
    if isinstance(caller, Reply):
        return caller
    body = request.json_object()
    for required in ("from", "to", "subject"):
        if not body.get(required):
            return resend_error(422, f"Missing `{required}` field.", "missing_required_field")
    recipients = body["to"] if isinstance(body["to"], list) else [body["to"]]
    text = body.get("text") or body.get("html") or ""
    email = SentEmail(
        str(uuid.uuid4()),
        str(body["from"]),
        [str(r) for r in recipients],
        str(body["subject"]),
        str(text),
        world.now(),
    )
    world.resend.emails.append(email)
    world.mark_changed()
    return Reply.json(200, {"id": email.id})


FAMILY = Family(
    "resend",
    "/resend",
    resend_error,
    extra_headers={"ratelimit-limit": "5", "ratelimit-remaining": "4", "ratelimit-reset": "1"},
)

ROUTES: list[Route] = [
    route("POST", "/resend/api-keys", _create_key),
    route("GET", "/resend/api-keys", _list_keys),
    route("PATCH", "/resend/api-keys/{key_id}", _update_key),
    route("DELETE", "/resend/api-keys/{key_id}", _delete_key),
    route("POST", "/resend/emails", _send_email),
]
