"""Fake Resend, Stripe and Google APIs behind one `httpx.MockTransport`, with fault injection.

Each fake answers on the paths and payloads of the official specs (tests/data/specs),
records every request, and remembers every secret it ever issued so canary tests can
look for them in logs and errors.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qs

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from providers.base import ProviderContext
from providers.http import HttpClient

SA_EMAIL = "rotator@bandofbakers.iam.gserviceaccount.com"
MakeCtx = Callable[..., ProviderContext]


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


def _bearer(request: httpx.Request) -> str | None:
    auth = request.headers.get("authorization", "")
    return auth[7:] if auth.startswith("Bearer ") else None


@dataclass
class Fault:
    """Make the next `times` requests matching `method` and `path` (regex) misbehave."""

    method: str
    path: str
    kind: str  # "429", "429-date", "503", "timeout", "drop", "connect"
    seconds: float = 1.0
    times: int = 1


@dataclass
class FakeResend:
    keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    issued: set[str] = field(default_factory=set)
    invalid_status: int = 400
    page_size_cap: int = 2  # small, so pagination is exercised

    def add_key(self, name: str, permission: str = "full_access") -> tuple[str, str]:
        key_id = f"{secrets.token_hex(4)}-0000-4000-8000-{secrets.token_hex(6)}"
        token = f"re_{secrets.token_urlsafe(24)}"
        self.issued.add(token)
        self.keys[key_id] = {
            "id": key_id,
            "name": name,
            "token": token,
            "permission": permission,
            "created_at": "2026-01-01T00:00:00.000000+00:00",
        }
        return key_id, token

    def named(self, name: str) -> list[dict[str, Any]]:
        return [k for k in self.keys.values() if k["name"] == name]

    def handle(self, request: httpx.Request) -> httpx.Response:
        token = _bearer(request)
        if token is None:
            return _json(401, {"statusCode": 401, "name": "missing_api_key", "message": "x"})
        caller = next((k for k in self.keys.values() if k["token"] == token), None)
        if caller is None:
            status = self.invalid_status
            return _json(
                status,
                {"statusCode": status, "name": "validation_error", "message": "API key is invalid"},
            )
        if caller["permission"] != "full_access":
            return _json(401, {"statusCode": 401, "name": "restricted_api_key", "message": "x"})
        path = request.url.path
        if path == "/api-keys" and request.method == "GET":
            limit = min(int(request.url.params.get("limit", "20")), self.page_size_cap)
            ordered = list(self.keys.values())
            after = request.url.params.get("after")
            if after:
                ids = [k["id"] for k in ordered]
                ordered = ordered[ids.index(after) + 1 :]
            page = ordered[:limit]
            return _json(
                200,
                {
                    "object": "list",
                    "has_more": len(ordered) > limit,
                    "data": [
                        {"id": k["id"], "name": k["name"], "created_at": k["created_at"]}
                        for k in page
                    ],
                },
            )
        if path == "/api-keys" and request.method == "POST":
            body = json.loads(request.content)
            if len(body.get("name", "")) > 50:
                return _json(422, {"statusCode": 422, "name": "validation_error", "message": "x"})
            key_id, new = self.add_key(body["name"], body.get("permission", "full_access"))
            return _json(201, {"id": key_id, "token": new})
        match = re.fullmatch(r"/api-keys/([^/]+)", path)
        if match and request.method == "DELETE":
            if self.keys.pop(match[1], None) is None:
                return _json(404, {"statusCode": 404, "name": "not_found", "message": "x"})
            return _json(200, {"object": "api_key", "id": match[1], "deleted": True})
        return _json(404, {"statusCode": 404, "name": "not_found", "message": "x"})


@dataclass
class FakeStripe:
    valid: set[str] = field(default_factory=set)
    expired: set[str] = field(default_factory=set)
    no_balance_permission: set[str] = field(default_factory=set)

    def new_key(self, kind: str = "sk", mode: str = "live") -> str:
        key = f"{kind}_{mode}_{secrets.token_hex(20)}"
        self.valid.add(key)
        return key

    def expire(self, key: str) -> None:
        self.valid.discard(key)
        self.expired.add(key)

    def handle(self, request: httpx.Request) -> httpx.Response:
        key = _bearer(request)
        if request.url.path != "/v1/balance":
            return _json(404, {"error": {"type": "invalid_request_error"}})
        if key in self.expired:
            return _json(
                401,
                {
                    "error": {
                        "code": "api_key_expired",
                        "message": f"Expired API Key provided: {key}",
                        "type": "invalid_request_error",
                    }
                },
            )
        if key not in self.valid:
            return _json(
                401,
                {
                    "error": {
                        "message": f"Invalid API Key provided: {key}",
                        "type": "invalid_request_error",
                    }
                },
            )
        if key in self.no_balance_permission:
            return _json(
                403,
                {
                    "error": {
                        "code": "more_permissions_required",
                        "message": f"The provided key '{key}' does not have the permissions",
                        "type": "invalid_request_error",
                    }
                },
            )
        return _json(200, {"object": "balance", "available": [], "pending": [], "livemode": True})


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class FakeGoogle:
    """The OAuth token endpoint, API Keys v2 and Identity Toolkit of one Google project."""

    project: str = "123456789"
    service_accounts: dict[str, rsa.RSAPublicKey] = field(default_factory=dict)
    access_tokens: set[str] = field(default_factory=set)
    token_requests: int = 0
    keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    operations: dict[str, dict[str, Any]] = field(default_factory=dict)
    polls_until_done: int = 2
    # How many Identity Toolkit answers a new key gets as API_KEY_INVALID (propagation).
    propagation_answers: int = 0
    unpropagated: dict[str, int] = field(default_factory=dict)
    oauth_clients: dict[str, set[str]] = field(default_factory=dict)
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def add_key(self, key_id: str, restrictions: dict[str, Any] | None = None) -> dict[str, Any]:
        name = f"projects/{self.project}/locations/global/keys/{key_id}"
        stamp = (self.now - timedelta(days=90)).isoformat().replace("+00:00", "Z")
        key = {
            "name": name,
            "uid": secrets.token_hex(8),
            "displayName": key_id,
            "keyString": f"AIza{secrets.token_urlsafe(26)}",
            "restrictions": restrictions or {},
            "createTime": stamp,
            "updateTime": stamp,
            "etag": secrets.token_hex(4),
        }
        self.keys[name] = key
        return key

    def handle(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        if host == "oauth2.googleapis.com":
            return self._token(request)
        if host == "identitytoolkit.googleapis.com":
            return self._identitytoolkit(request)
        if _bearer(request) not in self.access_tokens:
            return self._error(401, "UNAUTHENTICATED")
        return self._apikeys(request)

    def _error(self, code: int, status: str, reason: str | None = None) -> httpx.Response:
        error: dict[str, Any] = {"code": code, "message": "x", "status": status}
        if reason:
            error["details"] = [
                {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason}
            ]
        return _json(code, {"error": error})

    def _token(self, request: httpx.Request) -> httpx.Response:
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        if form.get("grant_type") == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            self.token_requests += 1
            header_b64, claims_b64, sig_b64 = form["assertion"].split(".")
            claims = json.loads(_b64decode(claims_b64))
            public = self.service_accounts.get(claims.get("iss"))
            try:
                assert public is not None
                public.verify(
                    _b64decode(sig_b64),
                    f"{header_b64}.{claims_b64}".encode(),
                    padding.PKCS1v15(),
                    hashes.SHA256(),
                )
                assert claims["aud"] == str(request.url)
                assert claims["exp"] - claims["iat"] <= 3600
                assert claims["scope"] == "https://www.googleapis.com/auth/cloud-platform"
            except Exception:
                return _json(400, {"error": "invalid_grant", "error_description": "Invalid JWT"})
            token = f"ya29.{secrets.token_urlsafe(32)}"
            self.access_tokens.add(token)
            return _json(200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"})
        if form.get("grant_type") == "authorization_code":
            allowed = self.oauth_clients.get(form.get("client_id", ""))
            if allowed is None or form.get("client_secret") not in allowed:
                return _json(401, {"error": "invalid_client"})
            return _json(
                400, {"error": "invalid_grant", "error_description": "Malformed auth code."}
            )
        return _json(400, {"error": "unsupported_grant_type"})

    def _operation(self, response: dict[str, Any] | None) -> dict[str, Any]:
        name = f"operations/akmf.{next(self._ids)}"
        self.operations[name] = {"polls": self.polls_until_done, "response": response}
        return {"name": name}

    def _public(self, key: dict[str, Any], *, with_string: bool = False) -> dict[str, Any]:
        shown = {k: v for k, v in key.items() if k != "keyString"}
        if with_string:
            shown["keyString"] = key["keyString"]
        return shown

    def _apikeys(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.lstrip("/")
        method = request.method
        if path.startswith("v2/operations/") and method == "GET":
            name = path.removeprefix("v2/")
            op = self.operations.get(name)
            if op is None:
                return self._error(404, "NOT_FOUND")
            if op["polls"] > 0:
                op["polls"] -= 1
                return _json(200, {"name": name, "done": False})
            body: dict[str, Any] = {"name": name, "done": True}
            if op["response"] is not None:
                body["response"] = op["response"]
            return _json(200, body)
        if path == "v2/keys:lookupKey":
            wanted = request.url.params.get("keyString")
            for key in self.keys.values():
                if key["keyString"] == wanted:
                    parent = key["name"].split("/keys/")[0]
                    return _json(200, {"name": key["name"], "parent": parent})
            return self._error(404, "NOT_FOUND")
        create = re.fullmatch(r"v2/(projects/[^/]+/locations/global)/keys", path)
        if create and method == "POST":
            key_id = request.url.params["keyId"]
            name = f"{create[1]}/keys/{key_id}"
            if name in self.keys:
                return self._error(409, "ALREADY_EXISTS")
            body = json.loads(request.content)
            key = self.add_key(key_id, body.get("restrictions"))
            key["displayName"] = body.get("displayName", "")
            stamp = self.now.isoformat().replace("+00:00", "Z")
            key["createTime"] = key["updateTime"] = stamp
            self.unpropagated[key["keyString"]] = self.propagation_answers
            response = {"@type": "type.googleapis.com/google.api.apikeys.v2.Key"}
            response.update(self._public(key, with_string=True))
            return _json(200, self._operation(response))
        string = re.fullmatch(r"v2/(projects/[^/]+/locations/global/keys/[^/]+)/keyString", path)
        if string and method == "GET":
            key = self.keys.get(string[1])
            if key is None:
                return self._error(404, "NOT_FOUND")
            return _json(200, {"keyString": key["keyString"]})
        one = re.fullmatch(r"v2/(projects/[^/]+/locations/global/keys/[^/]+)", path)
        if one:
            key = self.keys.get(one[1])
            if key is None:
                return self._error(404, "NOT_FOUND")
            if method == "GET":
                return _json(200, self._public(key))
            if method == "DELETE":
                key["deleteTime"] = self.now.isoformat().replace("+00:00", "Z")
                return _json(200, self._operation(self._public(key)))
        return self._error(404, "NOT_FOUND")

    def _identitytoolkit(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != "/v1/projects":
            return self._error(404, "NOT_FOUND")
        value = request.url.params.get("key")
        key = next((k for k in self.keys.values() if k["keyString"] == value), None)
        if key is None or key.get("deleteTime"):
            return self._error(400, "INVALID_ARGUMENT", "API_KEY_INVALID")
        if self.unpropagated.get(value, 0) > 0:
            self.unpropagated[value] -= 1
            return self._error(400, "INVALID_ARGUMENT", "API_KEY_INVALID")
        referrers = key["restrictions"].get("browserKeyRestrictions", {}).get("allowedReferrers")
        if referrers:
            referer = request.headers.get("referer", "")
            if not any(referer.startswith(r.replace("*", "")) for r in referrers):
                return self._error(403, "PERMISSION_DENIED", "API_KEY_HTTP_REFERRER_BLOCKED")
        return _json(200, {"projectId": "bandofbakers", "apiKey": value})


@dataclass
class FakeWorld:
    """Route requests to the fakes by host, applying faults, recording everything."""

    resend: FakeResend = field(default_factory=FakeResend)
    stripe: FakeStripe = field(default_factory=FakeStripe)
    google: FakeGoogle = field(default_factory=FakeGoogle)
    faults: list[Fault] = field(default_factory=list)
    requests: list[httpx.Request] = field(default_factory=list)
    sleeps: list[float] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        for fault in self.faults:
            if (
                fault.times > 0
                and fault.method == request.method
                and re.search(fault.path, request.url.path)
            ):
                fault.times -= 1
                return self._misbehave(fault, request)
        return self._route(request)

    def _route(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        if host == "api.resend.com":
            return self.resend.handle(request)
        if host == "api.stripe.com":
            return self.stripe.handle(request)
        return self.google.handle(request)

    def _misbehave(self, fault: Fault, request: httpx.Request) -> httpx.Response:
        if fault.kind == "429":
            return _json(
                429, {"name": "rate_limit_exceeded"}, {"retry-after": f"{fault.seconds:g}"}
            )
        if fault.kind == "429-date":
            when = datetime.now(UTC) + timedelta(seconds=fault.seconds)
            return _json(429, {}, {"retry-after": format_datetime(when, usegmt=True)})
        if fault.kind == "503":
            return _json(503, {"error": "unavailable"})
        if fault.kind == "timeout":
            raise httpx.ReadTimeout("timed out", request=request)
        if fault.kind == "connect":
            raise httpx.ConnectError("connection refused", request=request)
        if fault.kind == "drop":
            self._route(request)  # the server did the work; the answer is lost
            raise httpx.RemoteProtocolError("connection dropped", request=request)
        raise AssertionError(fault.kind)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def http(self, **kw: Any) -> HttpClient:
        client = httpx.Client(transport=httpx.MockTransport(self), timeout=5.0)
        kw.setdefault("sleep", self.sleep)
        kw.setdefault("rng", lambda: 0.5)
        return HttpClient(client, **kw)

    def issued_secrets(self) -> set[str]:
        found = set(self.resend.issued)
        found |= self.stripe.valid | self.stripe.expired
        found |= {k["keyString"] for k in self.google.keys.values()}
        found |= self.google.access_tokens
        for client_secrets in self.google.oauth_clients.values():
            found |= client_secrets
        return found
