"""Emulate Stripe's key checks under `/stripe`: `GET /v1/balance` and `GET /v1/account`.

Stripe has no public API to create or expire keys, so keys come from the console endpoints
(what a person does in the Dashboard); this module only answers the calls a validator makes.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from rotator.sandbox.routing import Family, Reply, Request, Route, route

if TYPE_CHECKING:
    from rotator.sandbox.world import World

KeyKind = Literal["secret", "restricted"]
ACCOUNT_ID = "acct_1SandboxBandBakers"
BALANCE_READ = "rak_balance_read"
_ALPHANUMERIC = string.ascii_letters + string.digits
ACCOUNT_READ = "rak_account_read"


def stripe_error(status: int, message: str, code: str | None = None) -> Reply:
    error: dict[str, Any] = {"message": message}
    error["type"] = "api_error" if status >= 500 else "invalid_request_error"
    headers: dict[str, str] = {}
    if status == 429:
        code = code or "rate_limit"
        headers["stripe-should-retry"] = "true"
    if code:
        error["code"] = code
        error["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"
    return Reply.json(status, {"error": error}, headers)


def masked(key: str) -> str:
    """Show a key the way Stripe's error messages do: prefix and last four characters."""
    prefix = "_".join(key.split("_")[:2])
    return f"{prefix}_****{key[-4:]}"


@dataclass
class StripeKey:
    id: str
    secret: str
    kind: KeyKind
    livemode: bool
    permissions: frozenset[str]
    created: datetime
    fails_from: datetime | None = None

    def accepted(self, now: datetime) -> bool:
        return self.fails_from is None or now < self.fails_from

    def console_view(self, now: datetime) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.kind,
            "livemode": self.livemode,
            "permissions": sorted(self.permissions),
            "created": self.created.isoformat(),
            "expires_at": self.fails_from.isoformat() if self.fails_from else None,
            "expired": not self.accepted(now),
            "redacted": masked(self.secret),
        }


@dataclass
class StripeAccount:
    keys: dict[str, StripeKey] = field(default_factory=dict)

    def create(
        self,
        kind: KeyKind,
        livemode: bool,
        now: datetime,
        permissions: frozenset[str] | None = None,
    ) -> StripeKey:
        prefix = ("sk_" if kind == "secret" else "rk_") + ("live_" if livemode else "test_")
        if permissions is None:
            permissions = frozenset({BALANCE_READ, ACCOUNT_READ})
        key = StripeKey(
            "key_" + secrets.token_hex(8),
            prefix + "".join(secrets.choice(_ALPHANUMERIC) for _ in range(99)),
            kind,
            livemode,
            permissions,
            now,
        )
        self.keys[key.id] = key
        return key

    def expire(self, key_id: str, now: datetime, delay: float) -> StripeKey | None:
        key = self.keys.get(key_id)
        if key is not None and key.fails_from is None:
            key.fails_from = now + timedelta(seconds=delay)
        return key

    def by_secret(self, value: str) -> StripeKey | None:
        return next(
            (k for k in self.keys.values() if secrets.compare_digest(k.secret, value)), None
        )

    def accepts(self, value: str, now: datetime) -> bool:
        key = self.by_secret(value)
        return key is not None and key.accepted(now)


def _authorise(world: World, request: Request, permission: str) -> StripeKey | Reply:
    value = request.bearer() or request.basic_user()
    if value is None:
        return stripe_error(
            401,
            "You did not provide an API key. You need to provide your API key in the "
            "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
            "YOUR_SECRET_KEY').",
        )
    key = world.stripe.by_secret(value)
    delay = world.profile.credential_propagation_delay
    if key is None or (delay > 0 and (world.now() - key.created).total_seconds() < delay):
        return stripe_error(401, f"Invalid API Key provided: {masked(value)}")
    if not key.accepted(world.now()):
        return stripe_error(401, f"Expired API Key provided: {masked(value)}", "api_key_expired")
    if key.kind == "restricted" and permission not in key.permissions:
        return stripe_error(
            403,
            f"The provided key '{masked(value)}' does not have the required permissions for "
            f"this endpoint on account '{ACCOUNT_ID}'. Having the '{permission}' permission "
            "would allow this request to continue.",
            "more_permissions_required",
        )
    return key


def _balance(world: World, request: Request) -> Reply:
    key = _authorise(world, request, BALANCE_READ)
    if isinstance(key, Reply):
        return key
    money = {"amount": 125_000, "currency": "gbp", "source_types": {"card": 125_000}}
    payload = {
        "object": "balance",
        "available": [money],
        "pending": [dict(money, amount=4_200, source_types={"card": 4_200})],
        "connect_reserved": [{"amount": 0, "currency": "gbp"}],
        "livemode": key.livemode,
    }
    return Reply.json(200, payload)


def _account(world: World, request: Request) -> Reply:
    key = _authorise(world, request, ACCOUNT_READ)
    if isinstance(key, Reply):
        return key
    payload = {
        "id": ACCOUNT_ID,
        "object": "account",
        "business_profile": {"name": "Band of Bakers", "url": "https://bandofbakers.co.uk"},
        "business_type": "company",
        "charges_enabled": True,
        "country": "GB",
        "created": 1_600_000_000,
        "default_currency": "gbp",
        "details_submitted": True,
        "email": "accounts@bandofbakers.co.uk",
        "metadata": {},
        "payouts_enabled": True,
        "type": "standard",
    }
    return Reply.json(200, payload)


FAMILY = Family("stripe", "/stripe", stripe_error)

ROUTES: list[Route] = [
    route("GET", "/stripe/v1/balance", _balance),
    route("GET", "/stripe/v1/account", _account),
]
