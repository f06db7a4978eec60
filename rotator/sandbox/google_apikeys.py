"""Emulate API Keys v2 under `/google/apikeys` (google-apikeys.v2.discovery.json, PROVIDERS.md §3).

Mutations answer with a long-running operation that is done only after it has been polled
`lro_polls` times and `lro_seconds` of the sandbox clock have passed (both from the fault
profile in force when it started). The key itself exists from the start, as it does at
Google, so a client that crashed before polling finds it again by listing. Key names carry
the project number, not the id, again as Google's do.
"""

from __future__ import annotations

import re
import secrets
import string
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from rotator.sandbox.routing import Family, Reply, Request, Route, route

if TYPE_CHECKING:
    from rotator.sandbox.world import World

KEY_TYPE = "type.googleapis.com/google.api.apikeys.v2.Key"
KEY_ID_PATTERN = re.compile(r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")
_UUID_LIKE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_KEY_ALPHABET = string.ascii_letters + string.digits + "-_"
_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "UNIMPLEMENTED",
    409: "ALREADY_EXISTS",
    412: "FAILED_PRECONDITION",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


def google_error(
    status: int, message: str, code_name: str | None = None, reason: str | None = None
) -> Reply:
    """Answer in the google.rpc envelope; `status` 412 stands for FAILED_PRECONDITION's 400."""
    http_status = 400 if status == 412 else status
    error: dict[str, Any] = {
        "code": http_status,
        "message": message,
        "status": code_name or _STATUS.get(status, "UNKNOWN"),
    }
    if reason:
        error["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": reason,
                "domain": "googleapis.com",
            }
        ]
    return Reply.json(http_status, {"error": error})


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class ApiKey:
    project_number: str
    key_id: str
    key_string: str
    display_name: str
    restrictions: dict[str, Any]
    annotations: dict[str, str]
    created: datetime
    usable_from: datetime
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    updated: datetime | None = None
    deleted: datetime | None = None
    etag: str = field(default_factory=lambda: f'W/"{secrets.token_urlsafe(16)}"')

    @property
    def name(self) -> str:
        return f"projects/{self.project_number}/locations/global/keys/{self.key_id}"

    def resource(self, *, with_key_string: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": self.name,
            "uid": self.uid,
            "displayName": self.display_name,
            "createTime": _stamp(self.created),
            "updateTime": _stamp(self.updated or self.created),
            "restrictions": self.restrictions,
            "etag": self.etag,
        }
        if self.annotations:
            body["annotations"] = self.annotations
        if self.deleted is not None:
            body["deleteTime"] = _stamp(self.deleted)
        if with_key_string:
            body["keyString"] = self.key_string
        return body

    def live(self, now: datetime) -> bool:
        return self.deleted is None and now >= self.usable_from


@dataclass
class Operation:
    name: str
    started: datetime
    polls_needed: int
    seconds_needed: float
    response: dict[str, Any]
    polls: int = 0

    def done(self, now: datetime) -> bool:
        elapsed = (now - self.started).total_seconds()
        return self.polls >= self.polls_needed and elapsed >= self.seconds_needed

    def view(self, now: datetime) -> dict[str, Any]:
        if not self.done(now):
            return {"name": self.name, "done": False}
        return {"name": self.name, "done": True, "response": self.response}


@dataclass
class ApiKeysService:
    """Projects (id → number), their keys, and the operations started on them."""

    projects: dict[str, str] = field(default_factory=dict)
    keys: dict[tuple[str, str], ApiKey] = field(default_factory=dict)
    operations: dict[str, Operation] = field(default_factory=dict)

    def project_number(self, project: str) -> str | None:
        if project in self.projects:
            return self.projects[project]
        return project if project in self.projects.values() else None

    def project_id(self, number: str) -> str:
        return next((pid for pid, num in self.projects.items() if num == number), number)

    def create(
        self,
        project: str,
        key_id: str,
        display_name: str,
        restrictions: dict[str, Any],
        now: datetime,
        propagation: float = 0.0,
        annotations: dict[str, str] | None = None,
    ) -> ApiKey:
        number = self.project_number(project) or project
        key_string = "AIza" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(35))
        key = ApiKey(
            number,
            key_id,
            key_string,
            display_name,
            restrictions,
            dict(annotations or {}),
            now,
            now + timedelta(seconds=propagation),
        )
        self.keys[(number, key_id)] = key
        return key

    def by_string(self, value: str) -> ApiKey | None:
        return next(
            (k for k in self.keys.values() if secrets.compare_digest(k.key_string, value)), None
        )

    def accepts(self, value: str, now: datetime) -> bool:
        key = self.by_string(value)
        return key is not None and key.live(now)

    def start(self, world: World, response: dict[str, Any]) -> Operation:
        profile = world.profile
        name = "operations/akmf.p7-" + secrets.token_hex(12)
        operation = Operation(name, world.now(), profile.lro_polls, profile.lro_seconds, response)
        self.operations[name] = operation
        return operation


def _authorise(world: World, request: Request) -> Reply | None:
    if not world.google.token_valid(request.bearer(), world.now()):
        return google_error(
            401,
            "Request had invalid authentication credentials. Expected OAuth 2 access token, "
            "login cookie or other valid authentication credential.",
            reason="ACCESS_TOKEN_TYPE_UNSUPPORTED" if request.bearer() is None else None,
        )
    return None


def _project(world: World, request: Request) -> str | Reply:
    if request.params["location"] != "global":
        return google_error(400, "Keys are global: the location must be 'global'.")
    number = world.apikeys.project_number(request.params["project"])
    if number is None:
        return google_error(
            403, "Permission denied on the project, or it does not exist.", reason="FORBIDDEN"
        )
    return number


def _key(world: World, request: Request) -> ApiKey | Reply:
    number = _project(world, request)
    if isinstance(number, Reply):
        return number
    key = world.apikeys.keys.get((number, request.params["key"]))
    if key is None:
        return google_error(404, f"Key {request.params['key']!r} was not found.")
    return key


def _operation_reply(world: World, key: ApiKey, *, with_key_string: bool) -> Reply:
    response = {"@type": KEY_TYPE, **key.resource(with_key_string=with_key_string)}
    operation = world.apikeys.start(world, response)
    return Reply.json(200, operation.view(world.now()))


def _create(world: World, request: Request) -> Reply:
    refused = _authorise(world, request)
    if refused is not None:
        return refused
    number = _project(world, request)
    if isinstance(number, Reply):
        return number
    key_id = request.query.get("keyId") or str(uuid.uuid4())
    if "keyId" in request.query and (not KEY_ID_PATTERN.match(key_id) or _UUID_LIKE.match(key_id)):
        return google_error(400, f"keyId {key_id!r} must match [a-z]([a-z0-9-]{{0,61}}[a-z0-9])?.")
    if (number, key_id) in world.apikeys.keys:
        return google_error(409, f"A key with id {key_id!r} already exists.")
    body = request.json_object()
    display_name = body.get("displayName", "")
    if not isinstance(display_name, str) or len(display_name) > 63:
        return google_error(400, "displayName must be a string of at most 63 characters.")
    restrictions = body.get("restrictions", {})
    annotations = body.get("annotations", {})
    if not isinstance(restrictions, dict) or not isinstance(annotations, dict):
        return google_error(400, "restrictions and annotations must be objects.")
    key = world.apikeys.create(
        number,
        key_id,
        display_name,
        restrictions,
        world.now(),
        world.profile.key_propagation_delay,
        {str(k): str(v) for k, v in annotations.items()},
    )
    world.mark_changed()
    return _operation_reply(world, key, with_key_string=True)


def _get_operation(world: World, request: Request) -> Reply:
    refused = _authorise(world, request)
    if refused is not None:
        return refused
    operation = world.apikeys.operations.get("operations/" + request.params["operation"])
    if operation is None:
        return google_error(404, "Operation not found.")
    operation.polls += 1
    return Reply.json(200, operation.view(world.now()))


def _get_key(world: World, request: Request) -> Reply:
    refused = _authorise(world, request)
    key = refused or _key(world, request)
    if isinstance(key, Reply):
        return key
    return Reply.json(200, key.resource())


def _get_key_string(world: World, request: Request) -> Reply:
    refused = _authorise(world, request)
    key = refused or _key(world, request)
    if isinstance(key, Reply):
        return key
    return Reply.json(200, {"keyString": key.key_string})


def _list_keys(world: World, request: Request) -> Reply:
    refused = _authorise(world, request)
    if refused is not None:
        return refused
    number = _project(world, request)
    if isinstance(number, Reply):
        return number
    show_deleted = request.query.get("showDeleted", "false").lower() == "true"
    keys = [
        k
        for (num, _), k in world.apikeys.keys.items()
        if num == number and (show_deleted or k.deleted is None)
    ]
    raw_size, raw_token = request.query.get("pageSize", "300"), request.query.get("pageToken", "0")
    if not raw_size.isdigit() or not raw_token.isdigit():
        return google_error(400, "pageSize and pageToken must be numbers.")
    size, start = max(1, min(int(raw_size), 300)), int(raw_token)
    page: dict[str, Any] = {"keys": [k.resource() for k in keys[start : start + size]]}
    if start + size < len(keys):
        page["nextPageToken"] = str(start + size)
    return Reply.json(200, page)


def _delete_key(world: World, request: Request) -> Reply:
    refused = _authorise(world, request)
    key = refused or _key(world, request)
    if isinstance(key, Reply):
        return key
    if key.deleted is not None:
        return google_error(404, f"Key {key.key_id!r} was not found.")
    etag = request.query.get("etag")
    if etag is not None and etag != key.etag:
        return google_error(409, "The etag does not match the key's current etag.", "ABORTED")
    key.deleted = key.updated = world.now()
    world.mark_changed()
    return _operation_reply(world, key, with_key_string=False)


def _undelete_key(world: World, request: Request) -> Reply:
    refused = _authorise(world, request)
    key = refused or _key(world, request)
    if isinstance(key, Reply):
        return key
    if key.deleted is None:
        return google_error(412, f"Key {key.key_id!r} is not deleted.")
    if world.now() - key.deleted > timedelta(days=30):
        return google_error(404, f"Key {key.key_id!r} was purged 30 days after deletion.")
    key.deleted, key.updated = None, world.now()
    world.mark_changed()
    return _operation_reply(world, key, with_key_string=False)


def _lookup(world: World, request: Request) -> Reply:
    refused = _authorise(world, request)
    if refused is not None:
        return refused
    key = world.apikeys.by_string(request.query.get("keyString", ""))
    if key is None:
        return google_error(404, "The key string was not found.")
    parent = f"projects/{key.project_number}/locations/global"
    return Reply.json(200, {"name": key.name, "parent": parent})


FAMILY = Family("google", "/google/apikeys", google_error)

_KEYS = "/google/apikeys/v2/projects/{project}/locations/{location}/keys"
ROUTES: list[Route] = [
    route("POST", _KEYS, _create),
    route("GET", _KEYS, _list_keys),
    route("GET", _KEYS + "/{key}", _get_key),
    route("GET", _KEYS + "/{key}/keyString", _get_key_string),
    route("DELETE", _KEYS + "/{key}", _delete_key),
    route("POST", _KEYS + "/{key}:undelete", _undelete_key),
    route("GET", "/google/apikeys/v2/operations/{operation}", _get_operation),
    route("GET", "/google/apikeys/v2/keys:lookupKey", _lookup),
]
