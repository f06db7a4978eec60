"""Rotate Resend API keys fully by API: create, validate, delete.

The tool authenticates with the current value of the same secret (the first full-access
key is made in the dashboard once). Resend accepts no idempotency key, so a create is
named after the rotation and a repeat first looks for it by name (PROVIDERS.md §1).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

from providers.base import (
    Capabilities,
    Generated,
    HttpProvider,
    ProviderContext,
    credential_name,
    error_codes,
    json_body,
    raise_for,
)
from rotator.errors import NeedsPersonError, RetryLaterError
from rotator.secret import Secret

if TYPE_CHECKING:
    import httpx

# Resend's answer for a deleted or unknown key changed over time (PROVIDERS.md §1).
_INVALID_KEY_STATUSES = (400, 401, 403)
_RESTRICTED = "restricted_api_key"
_NAME_LIMIT = 50


class ResendProvider(HttpProvider):
    """Create, validate and delete Resend API keys."""

    name = "resend"
    capabilities = Capabilities(
        automated_generate=True,
        automated_revoke=True,
        verifiable_revocation=True,
        max_live_credentials=None,
    )
    default_urls: ClassVar[Mapping[str, str]] = {"base_url": "https://api.resend.com"}

    def generate(self, ctx: ProviderContext) -> Generated:
        """Create a key named after this rotation, deleting one an earlier attempt lost."""
        op = "generate"
        manager = self._manager_key(ctx, op)
        name = credential_name(ctx, max_length=_NAME_LIMIT)
        # Listing the team's keys costs a request per hundred keys; a first attempt cannot
        # have left one behind, so only a resumed step looks (a mass emergency would
        # otherwise list every key once per secret).
        for key in self._keys(ctx, manager, op) if ctx.resumed else ():
            if key.get("name") == name and isinstance(key.get("id"), str):
                # An earlier create whose answer was lost: its token was shown only then.
                self._delete(ctx, manager, key["id"], op)
        permission = str(ctx.options.get("permission", "full_access"))
        body: dict[str, Any] = {"name": name, "permission": permission}
        if ctx.options.get("domain_id"):
            body["domain_id"] = str(ctx.options["domain_id"])
        response = self.send(
            ctx,
            "POST",
            self.url(ctx, "/api-keys"),
            operation=op,
            idempotent=False,
            token=manager,
            json=body,
        )
        created = json_body(response, self.name, op)
        key_id, token = created.get("id"), created.get("token")
        if not (isinstance(key_id, str) and isinstance(token, str) and token):
            raise RetryLaterError(
                "the create answer lacks id or token; the next attempt deletes that key "
                "by its name and creates another",
                provider=self.name,
                operation=op,
                status=response.status_code,
            )
        return Generated(
            value=Secret(token), ref=key_id, notes={"name": name, "permission": permission}
        )

    def validate(self, ctx: ProviderContext, value: Secret) -> None:
        """Check that `value` authenticates (a sending-only key counts as valid)."""
        op = "validate"
        response = self._probe(ctx, value, op)
        if response.status_code == 401 and _RESTRICTED in error_codes(response):
            return
        raise_for(response, self.name, op)

    def revoke(
        self, ctx: ProviderContext, ref: str, value: Secret | None
    ) -> Mapping[str, str] | None:
        """Delete the key `ref`; a key already gone counts as deleted."""
        op = "revoke"
        manager = ctx.current or value
        if manager is None:
            manager = self._manager_key(ctx, op)
        self._delete(ctx, manager, ref, op)
        return {"deleted": "irreversible"}

    def verify_revoked(self, ctx: ProviderContext, ref: str, value: Secret) -> bool:
        """Return True when Resend answers that the old key is invalid."""
        op = "verify_revoked"
        response = self._probe(ctx, value, op)
        if response.status_code == 200:
            return False
        if _RESTRICTED in error_codes(response):
            return False
        if response.status_code in _INVALID_KEY_STATUSES:
            return True
        raise_for(response, self.name, op)
        return False

    def instruction(self, ctx: ProviderContext, step: str) -> str:
        """Return the one human step Resend needs: the first key, made in the dashboard."""
        if ctx.current is not None:
            return ""
        return (
            f"The tool signs in to Resend with the current value of {ctx.secret_name}, and "
            "it does not hold one. Create a full-access key in the Resend dashboard "
            "(API Keys → Create API key, permission Full access), then hand it to the tool "
            f"with `rotate supply {ctx.secret_name}` (hidden prompt or stdin)."
        )

    def _manager_key(self, ctx: ProviderContext, op: str) -> Secret:
        if ctx.current is None:
            raise NeedsPersonError(self.instruction(ctx, op), provider=self.name, operation=op)
        return ctx.current

    def _probe(self, ctx: ProviderContext, value: Secret, op: str) -> httpx.Response:
        return self.send(
            ctx,
            "GET",
            self.url(ctx, "/api-keys"),
            operation=op,
            idempotent=True,
            token=value,
            params={"limit": 1},
            allow=_INVALID_KEY_STATUSES,
        )

    def _keys(self, ctx: ProviderContext, token: Secret, op: str) -> Iterator[dict[str, Any]]:
        params: dict[str, Any] = {"limit": 100}
        while True:
            response = self.send(
                ctx,
                "GET",
                self.url(ctx, "/api-keys"),
                operation=op,
                idempotent=True,
                token=token,
                params=params,
            )
            page = json_body(response, self.name, op)
            data = page.get("data")
            keys = [k for k in data if isinstance(k, dict)] if isinstance(data, list) else []
            yield from keys
            if not (page.get("has_more") and keys and isinstance(keys[-1].get("id"), str)):
                return
            params = {"limit": 100, "after": keys[-1]["id"]}

    def _delete(self, ctx: ProviderContext, token: Secret, key_id: str, op: str) -> None:
        self.send(
            ctx,
            "DELETE",
            self.url(ctx, f"/api-keys/{quote(key_id, safe='')}"),
            operation=op,
            idempotent=True,
            token=token,
            allow=(404,),
        )
