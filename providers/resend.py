"""Rotate Resend API keys fully by API: create, validate, delete.

Creating, listing and deleting keys needs a full-access key: Resend answers any other
call of a sending key with 401 `restricted_api_key`. The tool manages with the key named
by the `management_key` option (a credential under `[credentials]`, as the tool's own
are) and otherwise with the current value of the same secret, which only works while
that is a full-access key; so a secret rotated as a sending key needs `management_key`.
A sending key is proved valid by that very refusal: Resend checks the key before its
permission. Resend accepts no idempotency key, so a create is named after the rotation
and a repeat first looks for it by name (PROVIDERS.md §1).
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
from rotator.errors import NeedsPersonError, ProviderRefusedError, RetryLaterError
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
    # A guess: Resend documents no delay before a new key works (docs/contracts.md).
    default_propagation: ClassVar[float] = 120.0

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
        value = Secret(token)
        self.remember_created(value)
        return Generated(value=value, ref=key_id, notes={"name": name, "permission": permission})

    def validate(self, ctx: ProviderContext, value: Secret) -> None:
        """Check that `value` authenticates with the permission the inventory asks for."""
        found: list[str] = []
        self.while_propagating(ctx, value, lambda: found.append(self._permission(ctx, value)))
        wanted = str(ctx.options.get("permission", "full_access"))
        if found and found[-1] != wanted:
            raise ProviderRefusedError(
                f"the key authenticates but is a {found[-1]} key and {ctx.secret_name} is "
                f"rotated as {wanted} (options.permission in the inventory)",
                provider=self.name,
                operation="validate",
            )

    def _permission(self, ctx: ProviderContext, value: Secret) -> str:
        """Return the permission of a key Resend accepts; raise if it refuses the key."""
        op = "validate"
        response = self._probe(ctx, value, op)
        if response.status_code == 401 and _RESTRICTED in error_codes(response):
            return "sending_access"
        if response.status_code == 200:
            return "full_access"
        raise_for(response, self.name, op)
        raise ProviderRefusedError(
            f"Resend answered {response.status_code} to the key check",
            provider=self.name,
            operation=op,
            status=response.status_code,
        )

    def revoke(
        self, ctx: ProviderContext, ref: str, value: Secret | None
    ) -> Mapping[str, str] | None:
        """Delete the key `ref`; a key already gone counts as deleted."""
        op = "revoke"
        self._delete(ctx, self._manager_key(ctx, op, fallback=value), ref, op)
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
        if ctx.current is not None or ctx.options.get("management_key"):
            return ""
        return (
            f"The tool signs in to Resend with the current value of {ctx.secret_name}, and "
            "it does not hold one. Create a full-access key in the Resend dashboard "
            "(API Keys → Create API key, permission Full access), then hand it to the tool "
            f"with `rotate supply {ctx.secret_name}` (hidden prompt or stdin)."
        )

    def _manager_key(
        self, ctx: ProviderContext, op: str, *, fallback: Secret | None = None
    ) -> Secret:
        """Return the full-access key the tool manages keys with."""
        named = ctx.options.get("management_key")
        if named:
            return ctx.credentials.secret(str(named))
        if ctx.options.get("permission") == "sending_access":
            raise ProviderRefusedError(
                f"{ctx.secret_name} is rotated as a sending key, and Resend refuses a sending "
                "key everything but sending (401 restricted_api_key), so the tool cannot "
                "create or delete keys with it. Create a full-access key for the tool in the "
                "Resend dashboard, name it under [credentials] (e.g. resend_management = "
                '{ env = "RESEND_MANAGEMENT_KEY" }) and set options.management_key = '
                f'"resend_management" for {ctx.secret_name} in the inventory',
                provider=self.name,
                operation=op,
            )
        manager = ctx.current or fallback
        if manager is None:
            raise NeedsPersonError(self.instruction(ctx, op), provider=self.name, operation=op)
        return manager

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
