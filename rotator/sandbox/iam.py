"""Emulate IAM service-account keys under `/google/iam/v1` (create, list, get, delete).

A created key is a new RSA key of the same service account; its JSON key file is
answered once, base64-encoded in `privateKeyData`, and the token endpoint accepts
assertions signed with it (by `kid`) until it is deleted. A deleted key is refused by
the token endpoint at once. Spec: `google-iam.v1.discovery.json`
(`iam.projects.serviceAccounts.keys.*`); see docs/contracts.md.
"""

from __future__ import annotations

import base64
import json
import secrets
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric import rsa

from rotator.sandbox.assertion import ServiceAccount
from rotator.sandbox.google_apikeys import google_error
from rotator.sandbox.google_oauth import TOKEN_PATH
from rotator.sandbox.routing import Family, Reply, Request, Route, route

if TYPE_CHECKING:
    from rotator.sandbox.world import World

SEEDED_TIME = "2026-01-01T00:00:00Z"


def _authorise(world: World, request: Request) -> Reply | None:
    if not world.google.token_valid(request.bearer(), world.now()):
        return google_error(401, "Request had invalid authentication credentials.")
    return None


def _account(world: World, request: Request) -> ServiceAccount | Reply:
    refused = _authorise(world, request)
    if refused is not None:
        return refused
    account = world.google.accounts.get(request.params["account"])
    project = request.params["project"]
    if account is None or project not in ("-", account.project_id):
        return google_error(404, f"Service account {request.params['account']} does not exist.")
    return account


def _live_keys(world: World, account: ServiceAccount) -> list[ServiceAccount]:
    keys = [
        account,
        *(k for k in world.google.keys.values() if k.client_email == account.client_email),
    ]
    return [k for k in keys if k.key_id not in world.google.deleted_keys]


def _view(world: World, key: ServiceAccount) -> dict[str, Any]:
    return {
        "name": f"projects/{key.project_id}/serviceAccounts/{key.client_email}/keys/{key.key_id}",
        "validAfterTime": world.google.key_created.get(key.key_id, SEEDED_TIME),
        "validBeforeTime": "9999-12-31T23:59:59Z",
        "keyAlgorithm": "KEY_ALG_RSA_2048",
        "keyOrigin": "GOOGLE_PROVIDED",
        "keyType": "USER_MANAGED",
    }


def _create(world: World, request: Request) -> Reply:
    account = _account(world, request)
    if isinstance(account, Reply):
        return account
    body = request.json_object()
    kind = body.get("privateKeyType", "TYPE_GOOGLE_CREDENTIALS_FILE")
    if kind != "TYPE_GOOGLE_CREDENTIALS_FILE":
        return google_error(400, "The sandbox makes only TYPE_GOOGLE_CREDENTIALS_FILE keys.")
    if len(_live_keys(world, account)) >= 10:
        return google_error(412, "Precondition check failed.", "FAILED_PRECONDITION")
    key = ServiceAccount(
        account.client_email,
        account.project_id,
        secrets.token_hex(20),
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
    )
    world.google.keys[key.key_id] = key
    world.google.key_created[key.key_id] = world.now().strftime("%Y-%m-%dT%H:%M:%SZ")
    world.mark_changed()
    key_file = json.dumps(key.key_file(world.base_url + TOKEN_PATH)).encode()
    return Reply.json(
        200,
        {
            **_view(world, key),
            "privateKeyType": "TYPE_GOOGLE_CREDENTIALS_FILE",
            "privateKeyData": base64.b64encode(key_file).decode("ascii"),
        },
    )


def _list(world: World, request: Request) -> Reply:
    account = _account(world, request)
    if isinstance(account, Reply):
        return account
    return Reply.json(200, {"keys": [_view(world, k) for k in _live_keys(world, account)]})


def _key(world: World, request: Request) -> ServiceAccount | Reply:
    account = _account(world, request)
    if isinstance(account, Reply):
        return account
    wanted = request.params["key"]
    found = next((k for k in _live_keys(world, account) if k.key_id == wanted), None)
    if found is None:
        return google_error(404, f"Service account key {wanted} does not exist.")
    return found


def _get(world: World, request: Request) -> Reply:
    key = _key(world, request)
    if isinstance(key, Reply):
        return key
    return Reply.json(200, _view(world, key))


def _delete(world: World, request: Request) -> Reply:
    key = _key(world, request)
    if isinstance(key, Reply):
        return key
    world.google.deleted_keys.add(key.key_id)
    world.mark_changed()
    return Reply.json(200, {})


FAMILY = Family("google-iam", "/google/iam", google_error)
_KEYS = "/google/iam/v1/projects/{project}/serviceAccounts/{account}/keys"
ROUTES: list[Route] = [
    route("POST", _KEYS, _create),
    route("GET", _KEYS, _list),
    route("GET", _KEYS + "/{key}", _get),
    route("DELETE", _KEYS + "/{key}", _delete),
]
