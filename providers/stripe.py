"""Rotate Stripe secret or restricted keys with a person at the Dashboard.

Stripe's public API cannot create or expire keys (PROVIDERS.md §2), so generate and
revoke are instructions; the tool checks the shape of the supplied key, validates it with
`GET /v1/balance`, and later confirms the old key is refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar

from providers.base import (
    Capabilities,
    Generated,
    HttpProvider,
    ProviderContext,
    env_flag,
    raise_for,
)
from rotator.errors import NeedsPersonError, ProviderRefusedError
from rotator.secret import Secret

if TYPE_CHECKING:
    import httpx

_SHAPE = re.compile(r"(?P<kind>sk|rk)_(?P<mode>live|test)_[A-Za-z0-9]{8,}")


class StripeProvider(HttpProvider):
    """Take Stripe keys made by a person, validate them, and confirm old ones expired."""

    name = "stripe"
    capabilities = Capabilities(
        automated_generate=False,
        automated_revoke=False,
        verifiable_revocation=True,
        max_live_credentials=None,
    )
    default_urls: ClassVar[Mapping[str, str]] = {"base_url": "https://api.stripe.com"}
    # A guess: Stripe documents no delay before a new key works (docs/contracts.md).
    default_propagation: ClassVar[float] = 60.0

    def generate(self, ctx: ProviderContext) -> Generated:
        """Ask a person to create an additional key in the Dashboard."""
        raise NeedsPersonError(
            self.instruction(ctx, "generate"), provider=self.name, operation="generate"
        )

    def accept_supplied(self, ctx: ProviderContext, value: Secret) -> Generated:
        """Check the supplied key's shape and that Stripe accepts it."""
        kind = self._check_shape(ctx, value, "accept_supplied")
        # The person made it moments ago: a refusal now may be propagation.
        self.remember_created(value)
        self.while_propagating(
            ctx, value, lambda: self._validate_once(ctx, value), person_waiting=True
        )
        return Generated(
            value=value,
            # Nothing Stripe-side names the key without the key, so the ref is ours.
            ref=f"supplied:{ctx.rotation_id}",
            notes={"kind": kind, "mode": "live" if self._live(ctx) else "test"},
        )

    def validate(self, ctx: ProviderContext, value: Secret) -> None:
        """Check that Stripe authenticates the key (`GET /v1/balance`)."""
        self.while_propagating(ctx, value, lambda: self._validate_once(ctx, value))

    def _validate_once(self, ctx: ProviderContext, value: Secret) -> None:
        op = "validate"
        kind = self._check_shape(ctx, value, op)
        response = self._balance(ctx, value, op)
        # Authentication comes before permissions: a 403 proves a restricted key is valid.
        if response.status_code == 403 and kind == "restricted":
            return
        if response.status_code == 401:
            raise ProviderRefusedError(
                "Stripe does not accept this key (invalid or expired); create a new one "
                f"and run `rotate supply {ctx.secret_name}{env_flag(ctx)}` again",
                provider=self.name,
                operation=op,
                status=401,
            )
        raise_for(response, self.name, op)

    def revoke(
        self, ctx: ProviderContext, ref: str, value: Secret | None
    ) -> Mapping[str, str] | None:
        """Ask a person to expire the old key in the Dashboard."""
        raise NeedsPersonError(
            self.instruction(ctx, "revoke"), provider=self.name, operation="revoke"
        )

    def verify_revoked(self, ctx: ProviderContext, ref: str, value: Secret) -> bool:
        """Return True when Stripe answers 401 (expired or invalid) to the old key."""
        op = "verify_revoked"
        response = self._balance(ctx, value, op)
        if response.status_code == 401:
            return True
        if response.status_code in (200, 403):
            return False
        raise_for(response, self.name, op)
        return False

    def instruction(self, ctx: ProviderContext, step: str) -> str:
        """Return the Dashboard steps for `generate` or `revoke`."""
        mode = "live" if self._live(ctx) else "test"
        secret = ctx.secret_name
        if step == "revoke":
            return (
                f"Expire the OLD Stripe key of {secret} (rotation {ctx.rotation_id}):\n"
                f"1. Stripe Dashboard ({mode} mode) → Developers → API keys.\n"
                "2. Find the key this rotation replaced (not the one created for it); open "
                "its overflow menu (⋯) → Expire key → Now.\n"
                "3. Then tell the tool, which checks that Stripe now refuses the old key:\n"
                f"   rotate confirm {secret}{env_flag(ctx)} --step revoke"
            )
        return (
            f"Create a new Stripe key for {secret} (rotation {ctx.rotation_id}):\n"
            f"1. Stripe Dashboard ({mode} mode) → Developers → API keys.\n"
            "2. Create an ADDITIONAL key: 'Create secret key', or 'Create restricted key' "
            "with the same permissions as the current one if it is restricted. Name it "
            f"after this rotation, e.g. rotator-{ctx.rotation_id}.\n"
            "   Do NOT use 'Rotate key' on the current key: that puts an expiry of at most "
            "7 days on the key production still uses, while this rotation moves production "
            "to the new key only in month 3, so production would break.\n"
            "3. Enter the verification code Stripe sends, then copy the key (it is shown "
            "once).\n"
            "4. Hand it to the tool (hidden prompt or stdin, never a command-line "
            "argument):\n"
            f"   rotate supply {secret}{env_flag(ctx)}"
        )

    def _live(self, ctx: ProviderContext) -> bool:
        live = ctx.options.get("live", True)
        if isinstance(live, str):
            return live.strip().lower() not in ("false", "no", "0", "off")
        return bool(live)

    def _check_shape(self, ctx: ProviderContext, value: Secret, op: str) -> str:
        match = _SHAPE.fullmatch(value.reveal())
        expected = "live" if self._live(ctx) else "test"
        if match is None:
            raise ProviderRefusedError(
                f"this is not a Stripe secret or restricted key (expected sk_{expected}_… "
                f"or rk_{expected}_…); nothing was changed",
                provider=self.name,
                operation=op,
            )
        if match["mode"] != expected:
            raise ProviderRefusedError(
                f"this is a {match['mode']}-mode key ({match['kind']}_{match['mode']}_…) but "
                f"{ctx.secret_name} needs a {expected}-mode key ({match['kind']}_{expected}_…); "
                f"create it in {expected} mode in the Dashboard",
                provider=self.name,
                operation=op,
            )
        return "restricted" if match["kind"] == "rk" else "secret"

    def _balance(self, ctx: ProviderContext, value: Secret, op: str) -> httpx.Response:
        return self.send(
            ctx,
            "GET",
            self.url(ctx, "/v1/balance"),
            operation=op,
            idempotent=True,
            token=value,
            allow=(401, 403),
        )
