"""Emulate Google's OAuth 2.0 token endpoint under `/google/oauth2` (PROVIDERS.md §4c, §5).

Two callers use it: the rotator's own service account (JWT bearer, for API Keys v2), and
the validator of a "Sign in with Google" client secret, which sends a bogus authorization
code and reads the error: `invalid_grant` means the secret was right, `invalid_client`
that it was not.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from rotator.sandbox.assertion import (
    GOOGLE_TOKEN_URI,
    AssertionRejectedError,
    ServiceAccount,
    verify_assertion,
)
from rotator.sandbox.routing import Family, Reply, Request, Route, route

if TYPE_CHECKING:
    from rotator.sandbox.world import World

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_PATH = "/google/oauth2/token"  # noqa: S105 (a path, not a secret)
ACCESS_TOKEN_LIFETIME = 3599
SECRETS_PER_CLIENT = 2
_SECRET_ALPHABET = string.ascii_letters + string.digits + "-_"


def oauth_error(status: int, description: str, error: str | None = None) -> Reply:
    if error is None:
        error = {400: "invalid_request", 401: "invalid_client", 404: "not_found"}.get(
            status, "temporarily_unavailable"
        )
    return Reply.json(status, {"error": error, "error_description": description})


@dataclass
class ClientSecret:
    id: str
    value: str
    created: datetime
    enabled: bool = True

    def console_view(self) -> dict[str, Any]:
        # The console masks secrets after creation, as Google's has since 2025.
        return {
            "id": self.id,
            "enabled": self.enabled,
            "created": self.created.isoformat(),
            "hint": "****" + self.value[-4:],
        }


@dataclass
class OAuthClient:
    client_id: str
    environment: str
    secrets: dict[str, ClientSecret] = field(default_factory=dict)
    counter: int = 0

    def add_secret(self, now: datetime) -> ClientSecret:
        self.counter += 1
        value = "GOCSPX-" + "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(28))
        secret = ClientSecret(f"secret-{self.counter}", value, now)
        self.secrets[secret.id] = secret
        return secret

    def accepts(self, value: str, now: datetime | None = None, delay: float = 0.0) -> bool:
        return any(
            s.enabled
            and secrets.compare_digest(s.value, value)
            and not (now and delay > 0 and (now - s.created).total_seconds() < delay)
            for s in self.secrets.values()
        )


@dataclass
class GoogleAuth:
    """Service accounts, the access tokens issued to them, and the OAuth web clients."""

    accounts: dict[str, ServiceAccount] = field(default_factory=dict)
    tokens: dict[str, datetime] = field(default_factory=dict)
    # Keys made by IAM keys.create (rotator/sandbox/iam.py), by key id; deleted key ids.
    keys: dict[str, ServiceAccount] = field(default_factory=dict)
    deleted_keys: set[str] = field(default_factory=set)
    key_created: dict[str, str] = field(default_factory=dict)
    clients: dict[str, OAuthClient] = field(default_factory=dict)

    def issue_token(self, now: datetime) -> str:
        token = "ya29.sandbox-" + secrets.token_urlsafe(32)
        self.tokens[token] = now + timedelta(seconds=ACCESS_TOKEN_LIFETIME)
        return token

    def token_valid(self, token: str | None, now: datetime) -> bool:
        expires = self.tokens.get(token or "")
        return expires is not None and now < expires

    def accepts(self, client_id: str, value: str) -> bool:
        client = self.clients.get(client_id)
        return client is not None and client.accepts(value)


def _jwt_bearer(world: World, form: dict[str, str]) -> Reply:
    audiences = {GOOGLE_TOKEN_URI, world.base_url + TOKEN_PATH}
    try:
        verify_assertion(
            form.get("assertion", ""),
            world.google.accounts,
            audiences,
            world.now(),
            world.google.keys,
            world.google.deleted_keys,
        )
    except AssertionRejectedError as rejected:
        return oauth_error(400, rejected.description, rejected.error)
    token = world.google.issue_token(world.now())
    payload = {"access_token": token, "expires_in": ACCESS_TOKEN_LIFETIME, "token_type": "Bearer"}
    return Reply.json(200, payload)


def _client_grant(world: World, request: Request, form: dict[str, str], grant: str) -> Reply:
    client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
    credentials = request.basic_credentials()
    if not client_id and credentials is not None:
        # RFC 6749 §2.3.1 allows the client to authenticate with HTTP Basic instead.
        client_id, client_secret = credentials
    client = world.google.clients.get(client_id)
    if client is None:
        return oauth_error(401, "The OAuth client was not found.", "invalid_client")
    if not client.accepts(client_secret, world.now(), world.profile.credential_propagation_delay):
        return oauth_error(401, "Unauthorized", "invalid_client")
    if grant == "authorization_code":
        return oauth_error(400, "Malformed auth code.", "invalid_grant")
    return oauth_error(400, "Bad Request", "invalid_grant")


def _token(world: World, request: Request) -> Reply:
    form = request.form()
    grant = form.get("grant_type", "")
    if grant == JWT_BEARER:
        return _jwt_bearer(world, form)
    if grant in ("authorization_code", "refresh_token"):
        return _client_grant(world, request, form, grant)
    if not grant:
        return oauth_error(400, "Missing required parameter: grant_type", "invalid_request")
    return oauth_error(400, f"Invalid grant_type: {grant}", "unsupported_grant_type")


FAMILY = Family("google-oauth", "/google/oauth2", oauth_error)

ROUTES: list[Route] = [route("POST", TOKEN_PATH, _token)]
