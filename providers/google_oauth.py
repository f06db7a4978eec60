"""Rotate a "Sign in with Google" OAuth client secret with a person at the console.

Standard OAuth clients have no public API for secrets (PROVIDERS.md §4b), so a person
adds and later deletes secrets; the tool checks a secret at the token endpoint with a
bogus code. RFC 6749 §5.2 has the token endpoint authenticate the client before it
looks at the grant, and names the failure `invalid_client`; so `invalid_grant` (the code
is bogus) and `unauthorized_client` (this client may not use the grant type) both mean
the client authenticated with this secret, and `invalid_client` that it did not. Any
other answer proves nothing: the tool then asks a person rather than guess. A secret
added moments ago may be refused for a while (`propagation_seconds`, default 300).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar

from providers.base import (
    Capabilities,
    Generated,
    HttpProvider,
    ProviderContext,
    env_flag,
    error_codes,
    raise_for,
)
from rotator.errors import NeedsPersonError, ProviderRefusedError
from rotator.secret import Secret

if TYPE_CHECKING:
    import httpx

_PROBE_CODE = "rotator-validation-probe"
_WRONG_SECRET = ("invalid_client", "deleted_client", "disabled_client")
# Answers that can only come after the client authenticated (RFC 6749 §5.2).
_AUTHENTICATED = ("invalid_grant", "unauthorized_client")


class GoogleOAuthClientSecretProvider(HttpProvider):
    """Take OAuth client secrets added by a person, validate them, confirm old ones gone."""

    name = "google-oauth"
    capabilities = Capabilities(
        automated_generate=False,
        automated_revoke=False,
        verifiable_revocation=True,
        # The console holds two secrets per client, so rotation needs the old one gone
        # before the next is added (cap not documented by Google; see PROVIDERS.md §4b).
        max_live_credentials=2,
    )
    default_urls: ClassVar[Mapping[str, str]] = {
        "token_url": "https://oauth2.googleapis.com/token",
    }
    # Google's console warns that OAuth client changes may take 5 minutes or more to
    # apply (docs/contracts.md); for a new secret the delay is not documented.
    default_propagation: ClassVar[float] = 300.0

    def generate(self, ctx: ProviderContext) -> Generated:
        """Ask a person to add a secret to this environment's OAuth client."""
        raise NeedsPersonError(
            self.instruction(ctx, "generate"), provider=self.name, operation="generate"
        )

    def accept_supplied(self, ctx: ProviderContext, value: Secret) -> Generated:
        """Check that Google authenticates the client with the supplied secret."""
        # The person made it moments ago: a refusal now may be propagation.
        self.remember_created(value)
        self.while_propagating(
            ctx, value, lambda: self._validate_once(ctx, value), person_waiting=True
        )
        return Generated(
            value=value,
            ref=f"supplied:{ctx.rotation_id}",
            notes={"client_id": str(self.option(ctx, "client_id", "accept_supplied"))},
        )

    def validate(self, ctx: ProviderContext, value: Secret) -> None:
        """Check the secret at the token endpoint; an authenticated client means it is right."""
        self.while_propagating(ctx, value, lambda: self._validate_once(ctx, value))

    def _validate_once(self, ctx: ProviderContext, value: Secret) -> None:
        op = "validate"
        response = self._probe(ctx, value, op)
        codes = error_codes(response)
        if any(code in codes for code in _AUTHENTICATED):
            return
        client_id = self.option(ctx, "client_id", op)
        if any(code in codes for code in _WRONG_SECRET):
            raise ProviderRefusedError(
                f"Google does not accept this secret for OAuth client {client_id} "
                f"({'/'.join(codes)}); check that it was added to that client and copied whole",
                provider=self.name,
                operation=op,
                status=response.status_code,
            )
        if response.status_code in (408, 429) or response.status_code >= 500:
            raise_for(response, self.name, op)
        raise NeedsPersonError(
            f"Google's token endpoint answered {response.status_code} "
            f"({'/'.join(codes) or 'no error code'}) for OAuth client {client_id}, which "
            "proves neither that the secret is right nor wrong. Sign in with Google on the "
            f"environment that uses it; if that works, run `rotate resume {ctx.secret_name}"
            f"{env_flag(ctx)}`, otherwise supply the secret again",
            provider=self.name,
            operation=op,
        )

    def revoke(
        self, ctx: ProviderContext, ref: str, value: Secret | None
    ) -> Mapping[str, str] | None:
        """Ask a person to disable, then delete, the old secret in the console."""
        raise NeedsPersonError(
            self.instruction(ctx, "revoke"), provider=self.name, operation="revoke"
        )

    def verify_revoked(self, ctx: ProviderContext, ref: str, value: Secret) -> bool:
        """Return True when the old secret now answers `invalid_client`."""
        op = "verify_revoked"
        response = self._probe(ctx, value, op)
        codes = error_codes(response)
        if any(code in codes for code in _AUTHENTICATED):
            return False
        if any(code in codes for code in _WRONG_SECRET):
            return True
        raise_for(response, self.name, op)
        return False

    def instruction(self, ctx: ProviderContext, step: str) -> str:
        """Return the Google Auth Platform console steps for `generate` or `revoke`."""
        client_id = ctx.options.get("client_id", "<client id not set in the inventory>")
        env = ctx.scope_env or "shared"
        secret = ctx.secret_name
        where = (
            "Google Cloud console → the project of this client → Google Auth Platform → "
            f"Clients → the client {client_id} ({env})"
        )
        if step == "revoke":
            return (
                f"Remove the OLD client secret of {secret} in {env} (rotation "
                f"{ctx.rotation_id}):\n"
                f"1. {where}.\n"
                "2. Under Client secrets, find the secret this rotation replaced (not the "
                "newest one); Disable it, then Delete it.\n"
                "3. Then tell the tool, which checks that Google now refuses the old secret:\n"
                f"   rotate confirm {secret}{env_flag(ctx)} --step revoke"
            )
        return (
            f"Add a new client secret for {secret} in {env} (rotation {ctx.rotation_id}):\n"
            f"1. {where}.\n"
            "2. Under Client secrets choose 'Add secret'. Do not disable or delete the "
            "current secret: the environment still uses it.\n"
            "3. Copy the new secret now: Google shows it only once.\n"
            "4. Hand it to the tool (hidden prompt or stdin, never a command-line "
            "argument):\n"
            f"   rotate supply {secret}{env_flag(ctx)}"
        )

    def _probe(self, ctx: ProviderContext, value: Secret, op: str) -> httpx.Response:
        form = {
            "grant_type": "authorization_code",
            "code": _PROBE_CODE,
            "client_id": str(self.option(ctx, "client_id", op)),
            "client_secret": value.reveal(),
        }
        redirect_uri = ctx.options.get("redirect_uri")
        if redirect_uri:
            form["redirect_uri"] = str(redirect_uri)
        # A bogus code changes nothing at Google, so the probe is safe to repeat.
        return self.send(
            ctx,
            "POST",
            self.url(ctx, key="token_url"),
            operation=op,
            idempotent=True,
            data=form,
            allow=(400, 401),
        )
