"""Rotate the Google Cloud API key used by Identity Platform, fully by API (API Keys v2).

The key is created with a keyId derived from the rotation, so a repeat finds it (or gets
409) instead of creating a second one; creates and deletes are long-running operations,
polled for a bounded time and otherwise resumed by the next run (PROVIDERS.md §3).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from providers import google_auth
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
from rotator import clock
from rotator.errors import BadInputError, ProviderRefusedError, RetryLaterError
from rotator.secret import Secret

if TYPE_CHECKING:
    import httpx

KEY_ID = re.compile(r"[a-z]([a-z0-9-]{0,61}[a-z0-9])?")
_KEY_NAME = re.compile(r"projects/[^/?#]+/locations/global/keys/[a-z0-9-]+")
DEFAULT_API_TARGETS = ("identitytoolkit.googleapis.com", "securetoken.googleapis.com")
_ALREADY_EXISTS = 6  # google.rpc.Code


class GcpIdentityApiKeyProvider(HttpProvider):
    """Create, validate and delete Google Cloud API keys for Identity Platform."""

    name = "gcp-identity"
    capabilities = Capabilities(
        automated_generate=True,
        automated_revoke=True,
        verifiable_revocation=True,
        max_live_credentials=None,
    )
    default_urls: ClassVar[Mapping[str, str]] = {
        "apikeys_url": "https://apikeys.googleapis.com",
        "identitytoolkit_url": "https://identitytoolkit.googleapis.com",
    }

    def generate(self, ctx: ProviderContext) -> Generated:
        """Create the key of this rotation, or pick up the one an earlier attempt created."""
        op = "generate"
        token = self._token(ctx)
        project = str(self.option(ctx, "project", op))
        key_id = credential_name(ctx, max_length=63)
        if not KEY_ID.fullmatch(key_id):
            raise ProviderRefusedError(
                f"cannot derive a valid keyId from rotation {ctx.rotation_id!r}",
                provider=self.name,
                operation=op,
            )
        parent = f"projects/{project}/locations/global"
        name = f"{parent}/keys/{key_id}"
        found = self._get(ctx, token, name, op)
        if found is not None:
            if found.get("deleteTime"):
                raise ProviderRefusedError(
                    f"the key {name} of this rotation was deleted; start a new rotation",
                    provider=self.name,
                    operation=op,
                )
            return self._generated(ctx, token, str(found.get("name") or name), key_id, None)
        body = {"displayName": key_id, "restrictions": self._restrictions(ctx, token, op)}
        # The keyId makes a repeated create answer 409, never make a second key, so a
        # create is as safe to retry as a read.
        response = self.send(
            ctx,
            "POST",
            self.url(ctx, f"v2/{parent}/keys", key="apikeys_url"),
            operation=op,
            idempotent=True,
            token=token,
            params={"keyId": key_id},
            json=body,
            allow=(409,),
        )
        if response.status_code == 409:
            return self._generated(ctx, token, name, key_id, None)
        done = self._wait(ctx, token, json_body(response, self.name, op), op)
        error = done.get("error")
        if isinstance(error, dict) and error.get("code") == _ALREADY_EXISTS:
            return self._generated(ctx, token, name, key_id, None)
        self._raise_operation_error(done, op)
        result = done.get("response")
        key = result if isinstance(result, dict) else {}
        return self._generated(ctx, token, str(key.get("name") or name), key_id, key)

    def validate(self, ctx: ProviderContext, value: Secret) -> None:
        """Check that Identity Toolkit accepts the key, waiting out propagation for a while."""
        op = "validate"
        budget = float(ctx.options.get("validate_wait", 60))
        waited, delay = 0.0, 5.0
        while True:
            response = self._probe(ctx, value, op)
            if response.status_code == 200:
                return
            if not self._recently_changed(ctx, value, op):
                raise_for(response, self.name, op)
            if waited >= budget:
                raise RetryLaterError(
                    "the new key is not accepted yet; Google applies new keys within minutes",
                    retry_after=30.0,
                    provider=self.name,
                    operation=op,
                    status=response.status_code,
                )
            ctx.http.sleep(delay)
            waited += delay
            delay = min(delay * 2, 15.0)

    def revoke(
        self, ctx: ProviderContext, ref: str, value: Secret | None
    ) -> Mapping[str, str] | None:
        """Delete the key `ref` (soft: Google can undelete it for 30 days)."""
        op = "revoke"
        self._check_ref(ref, op)
        token = self._token(ctx)
        response = self.send(
            ctx,
            "DELETE",
            self.url(ctx, f"v2/{ref}", key="apikeys_url"),
            operation=op,
            idempotent=True,
            token=token,
            allow=(404,),
        )
        if response.status_code != 404:
            done = self._wait(ctx, token, json_body(response, self.name, op), op)
            self._raise_operation_error(done, op)
        return {"undelete": f"possible for 30 days: POST v2/{ref}:undelete"}

    def verify_revoked(self, ctx: ProviderContext, ref: str, value: Secret) -> bool:
        """Return True only when Google proves the old key is gone.

        `API_KEY_INVALID` (400) is the answer for a key that does not exist; a key that is
        refused for a restriction (`API_KEY_SERVICE_BLOCKED`, `API_KEY_HTTP_REFERRER_BLOCKED`,
        an IP or app block) still exists and would work for a caller it allows. Without
        `API_KEY_INVALID`, the key's own resource (looked up by its value) decides: gone
        or marked deleted.
        """
        op = "verify_revoked"
        response = self._probe(ctx, value, op)
        if response.status_code == 200:
            return False
        if response.status_code >= 500 or response.status_code == 429:
            raise_for(response, self.name, op)
        if "API_KEY_INVALID" in error_codes(response):
            return True
        # Ask by the value, not by the recorded ref: a wrong ref must not prove anything.
        found = self._lookup(ctx, value, op)
        return found is None or bool(found.get("deleteTime"))

    def names_ref(self, ctx: ProviderContext, ref: str, value: Secret) -> bool | None:
        """Ask Google which key has this key string (`keys:lookupKey`) and compare names."""
        found = self._lookup(ctx, value, "names_ref")
        if found is None:
            return False
        return found.get("name") == ref

    def canonical_ref(self, ctx: ProviderContext, ref: str) -> str:
        """Return the key's resource name for a key id or resource name the key has now.

        Accepts `idp-web-initial` (the key id, in the project of the `project` option) or
        `projects/<project>/locations/global/keys/<id>`; asks Google that the key exists and
        is not deleted, and returns the name Google gives it.
        """
        op = "canonical_ref"
        forms = (
            "the key id (e.g. idp-web-initial) or its resource name "
            "projects/<project>/locations/global/keys/<key id>"
        )
        text = ref.strip()
        if _KEY_NAME.fullmatch(text):
            name = text
        elif KEY_ID.fullmatch(text):
            project = str(self.option(ctx, "project", op))
            name = f"projects/{project}/locations/global/keys/{text}"
        else:
            raise BadInputError(
                f"{ref!r} is not a Google Cloud API key reference for {ctx.secret_name}; "
                f"give {forms} (Google Cloud console → APIs & Services → Credentials, or "
                "`gcloud services api-keys list`)"
            )
        found = self._get(ctx, self._token(ctx), name, op)
        if found is None or found.get("deleteTime"):
            state = "is deleted" if found else "does not exist"
            raise BadInputError(
                f"the API key {name} {state} in Google Cloud; give {forms} of the key "
                f"{ctx.secret_name} uses now"
            )
        given = found.get("name")
        return str(given) if isinstance(given, str) and _KEY_NAME.fullmatch(given) else name

    def _token(self, ctx: ProviderContext) -> Secret:
        credential = str(ctx.options.get("credential", "gcp_service_account"))
        path: Path = ctx.credentials.path(credential)
        return google_auth.access_token(
            ctx.http, path, provider=self.name, token_url=ctx.urls.get("token_url")
        )

    def _check_ref(self, ref: str, op: str) -> None:
        if not _KEY_NAME.fullmatch(ref):
            raise ProviderRefusedError(
                f"{ref!r} is not an API key resource name "
                "(projects/<p>/locations/global/keys/<id>)",
                provider=self.name,
                operation=op,
            )

    def _get(
        self, ctx: ProviderContext, token: Secret, name: str, op: str
    ) -> dict[str, Any] | None:
        response = self.send(
            ctx,
            "GET",
            self.url(ctx, f"v2/{name}", key="apikeys_url"),
            operation=op,
            idempotent=True,
            token=token,
            allow=(404,),
        )
        if response.status_code == 404:
            return None
        return json_body(response, self.name, op)

    def _restrictions(self, ctx: ProviderContext, token: Secret, op: str) -> dict[str, Any]:
        configured = ctx.options.get("restrictions")
        if isinstance(configured, Mapping):
            return dict(configured)
        if ctx.current_ref:
            self._check_ref(ctx.current_ref, op)
            current = self._get(ctx, token, ctx.current_ref, op)
            copied = current.get("restrictions") if current else None
            if isinstance(copied, dict) and copied:
                return copied
            # Made up restrictions could lock the app out, none would open the key to
            # anyone: a person chooses.
            why = "has no restrictions" if current else "cannot be read"
            raise ProviderRefusedError(
                f"the current key {ctx.current_ref} {why}, so its restrictions cannot be "
                f"copied to the new key of {ctx.secret_name}; set options.restrictions for "
                "it in the inventory (an API Keys restrictions object; {} for none)",
                provider=self.name,
                operation=op,
            )
        targets = ctx.options.get("api_targets", DEFAULT_API_TARGETS)
        restrictions: dict[str, Any] = {"apiTargets": [{"service": str(s)} for s in targets]}
        referrers = _referrers(ctx)
        if referrers:
            restrictions["browserKeyRestrictions"] = {"allowedReferrers": referrers}
        return restrictions

    def _wait(
        self, ctx: ProviderContext, token: Secret, operation: dict[str, Any], op: str
    ) -> dict[str, Any]:
        name = operation.get("name")
        budget = float(ctx.options.get("operation_timeout", 60))
        waited, delay = 0.0, 1.0
        while not operation.get("done"):
            if not (isinstance(name, str) and re.fullmatch(r"operations/[^/?#]+", name)):
                raise ProviderRefusedError(
                    "the long-running operation has no usable name",
                    provider=self.name,
                    operation=op,
                )
            if waited >= budget:
                raise RetryLaterError(
                    f"{name} is still running after {waited:.0f}s; the next run resumes it",
                    retry_after=10.0,
                    provider=self.name,
                    operation=op,
                )
            # Google suggests polling about every 10 seconds.
            ctx.http.sleep(delay)
            waited += delay
            delay = min(delay * 2, 10.0)
            response = self.send(
                ctx,
                "GET",
                self.url(ctx, f"v2/{name}", key="apikeys_url"),
                operation=op,
                idempotent=True,
                token=token,
            )
            operation = json_body(response, self.name, op)
        return operation

    def _raise_operation_error(self, done: dict[str, Any], op: str) -> None:
        error = done.get("error")
        if isinstance(error, dict):
            code = error.get("code")
            raise ProviderRefusedError(
                f"the long-running operation failed (google.rpc.Code {code})",
                provider=self.name,
                operation=op,
            )

    def _generated(
        self,
        ctx: ProviderContext,
        token: Secret,
        name: str,
        key_id: str,
        key: dict[str, Any] | None,
    ) -> Generated:
        key_string = key.get("keyString") if key else None
        if not isinstance(key_string, str) or not key_string:
            key_string = self._key_string(ctx, token, name)
        return Generated(
            value=Secret(key_string), ref=name, notes={"key_id": key_id, "display_name": key_id}
        )

    def _key_string(self, ctx: ProviderContext, token: Secret, name: str) -> str:
        op = "generate"
        response = self.send(
            ctx,
            "GET",
            self.url(ctx, f"v2/{name}/keyString", key="apikeys_url"),
            operation=op,
            idempotent=True,
            token=token,
            allow=(404,),
        )
        if response.status_code == 404:
            raise RetryLaterError(
                f"the key {name} is not readable yet (still being created)",
                retry_after=10.0,
                provider=self.name,
                operation=op,
                status=404,
            )
        value = json_body(response, self.name, op).get("keyString")
        if not isinstance(value, str) or not value:
            raise ProviderRefusedError(
                "the keyString answer has no keyString", provider=self.name, operation=op
            )
        return value

    def _probe(self, ctx: ProviderContext, value: Secret, op: str) -> httpx.Response:
        explicit = ctx.options.get("validate_referer")
        referer = str(explicit) if explicit else _referer_matching(_referrers(ctx))
        response = self._get_projects(ctx, value, op, referer)
        if response.status_code == 403 and referer is None:
            # A browser-restricted key refuses a caller without the allowed Referer; the
            # key's own restrictions say which one when the inventory does not.
            key = self._lookup(ctx, value, op)
            restrictions = key.get("restrictions") if key else None
            browser = restrictions.get("browserKeyRestrictions") if restrictions else None
            allowed = browser.get("allowedReferrers") if isinstance(browser, dict) else None
            referer = _referer_matching([str(a) for a in allowed or []])
            if referer:
                response = self._get_projects(ctx, value, op, referer)
        return response

    def _get_projects(
        self, ctx: ProviderContext, value: Secret, op: str, referer: str | None
    ) -> httpx.Response:
        return self.send(
            ctx,
            "GET",
            self.url(ctx, "v1/projects", key="identitytoolkit_url"),
            operation=op,
            idempotent=True,
            headers={"Referer": referer} if referer else {},
            params={"key": value.reveal()},
            allow=(400, 401, 403),
        )

    def _lookup(self, ctx: ProviderContext, value: Secret, op: str) -> dict[str, Any] | None:
        """Return the key resource whose key string is `value`, or None if Google has none."""
        token = self._token(ctx)
        response = self.send(
            ctx,
            "GET",
            self.url(ctx, "v2/keys:lookupKey", key="apikeys_url"),
            operation=op,
            idempotent=True,
            token=token,
            params={"keyString": value.reveal()},
            allow=(400, 403, 404),
        )
        if response.status_code != 200:
            return None
        name = json_body(response, self.name, op).get("name")
        if not (isinstance(name, str) and _KEY_NAME.fullmatch(name)):
            return None
        return self._get(ctx, token, name, op)

    def _recently_changed(self, ctx: ProviderContext, value: Secret, op: str) -> bool:
        """Return True if the key exists and changed within the propagation delay."""
        key = self._lookup(ctx, value, op)
        if key is None or key.get("deleteTime"):
            return False
        changed = _parse_time(key.get("updateTime")) or _parse_time(key.get("createTime"))
        window = timedelta(seconds=float(ctx.options.get("propagation_seconds", 600)))
        return changed is not None and clock.now() - changed < window


def _referrers(ctx: ProviderContext) -> list[str]:
    many = ctx.options.get("allowed_referrers")
    if isinstance(many, list | tuple):
        return [str(r) for r in many]
    one = ctx.options.get("allowed_referrer")
    return [str(one)] if one else []


def _referer_matching(patterns: list[str]) -> str | None:
    """Return a URL the first allowed referrer pattern accepts (`https://x/*` → `https://x/`)."""
    if not patterns:
        return None
    pattern = patterns[0]
    if "://" not in pattern:
        pattern = f"https://{pattern}"
    return pattern.replace("://*.", "://www.").replace("*", "")


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    # Google writes RFC 3339 with up to nanoseconds; Python takes microseconds.
    text = re.sub(r"(\.\d{6})\d+", r"\1", value.replace("Z", "+00:00"))
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None
