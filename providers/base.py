"""State the provider contract: what each operation must do and what each exception means.

A provider creates, validates and revokes credentials at one third-party service. The
engine owns intent records, audit events, retries across runs and the order of steps; a
provider only does the one call it is asked for and says how it ended, by returning or by
raising one of these (all `rotator.errors.ProviderError`, whose message names provider,
operation and HTTP status and never a secret value):

* `RetryLaterError`: transient (429, 5xx, timeout, propagation delay, a long-running
  operation still running). The engine records the attempt and runs the same step again
  later, no earlier than `retry_after` seconds when set. The step must be safe to repeat.
* `NeedsPersonError`: a person must act; `instruction` says exactly what, and which
  command to run afterwards (`rotate supply ...`, `rotate confirm ...`). The rotation
  waits in *awaiting operator*; cron runs remind rather than fail.
* `ProviderRefusedError`: the provider refused (invalid or expired key, missing
  permission, bad request). Repeating the same call will not help; a person must look.
* `NotSupportedError`: this provider cannot do this operation at all.

Anything else escaping a provider is a bug.
"""

from __future__ import annotations

import hashlib
import json as jsonlib
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from rotator import clock
from rotator.errors import (
    NotSupportedError,
    ProviderRefusedError,
    RetryLaterError,
)
from rotator.secret import Secret

if TYPE_CHECKING:
    import httpx

    from providers.http import HttpClient


@dataclass(frozen=True)
class Capabilities:
    """Say what a provider can do without a person, for planning and `rotate providers`."""

    automated_generate: bool
    automated_revoke: bool
    verifiable_revocation: bool
    # None: the provider documents no limit on credentials alive at once.
    max_live_credentials: int | None = None

    @property
    def operator_assisted(self) -> bool:
        """Return True when some step of a rotation needs a person at the provider."""
        return not (self.automated_generate and self.automated_revoke)


class CredentialSource(Protocol):
    """Give providers the tool's own credentials named in the inventory's `[credentials]`."""

    def secret(self, name: str) -> Secret:
        """Return the credential `name` (from an environment variable or a file)."""
        ...

    def path(self, name: str) -> Path:
        """Return the file that holds the credential `name` (a service-account key)."""
        ...


@dataclass(frozen=True)
class ProviderContext:
    """Carry everything one provider call may use; the provider keeps no other state."""

    secret_name: str
    # None for a shared secret; the environment name for a per-environment one.
    scope_env: str | None
    rotation_id: str
    options: Mapping[str, Any]
    urls: Mapping[str, str]
    http: HttpClient
    credentials: CredentialSource
    current: Secret | None = None
    current_ref: str | None = None
    # True when an earlier attempt of this step may have reached the provider (a retry,
    # or a run after a crash): only then is it worth looking for what it created.
    resumed: bool = True
    # When the value being validated was created or supplied, if the caller knows it: a
    # refusal soon after is read as propagation, not as a wrong value.
    created_at: datetime | None = None


@dataclass(frozen=True)
class Generated:
    """Describe a new credential: its value, a non-secret reference to it, and notes."""

    value: Secret
    ref: str
    notes: Mapping[str, str] = field(default_factory=dict)


class Provider(ABC):
    """Create, validate and revoke the credentials of one third-party service."""

    name: ClassVar[str]
    capabilities: ClassVar[Capabilities]

    @abstractmethod
    def generate(self, ctx: ProviderContext) -> Generated:
        """Create a new credential next to the current one and return it.

        Must not revoke or change the current credential. Must be safe to repeat after a
        lost answer: a credential created by an earlier attempt of the same rotation
        (`ctx.rotation_id`) is found again or cleaned up, never left as a second extra one.
        Raises `NeedsPersonError` when only a person can create it (operator-assisted;
        the value then arrives through `accept_supplied`), `RetryLaterError` when the
        outcome is unknown or transient, `ProviderRefusedError` when the tool's own
        credential is refused.
        """

    def accept_supplied(self, ctx: ProviderContext, value: Secret) -> Generated:
        """Check a value a person created and handed over, and return it as generated.

        Refuses with `ProviderRefusedError` a value of the wrong kind or one the provider
        does not accept; `NotSupportedError` for a provider that creates its own values.
        """
        raise NotSupportedError(
            f"{self.name} creates credentials itself; there is nothing to supply",
            provider=self.name,
            operation="accept_supplied",
        )

    @abstractmethod
    def validate(self, ctx: ProviderContext, value: Secret) -> None:
        """Return if the provider accepts `value`; raise otherwise.

        `ProviderRefusedError` when it is refused for good, `RetryLaterError` when it may
        not be accepted yet (propagation) or the provider could not answer.
        """

    # Optional hooks: empty on purpose, most providers have nothing to do at these steps.
    def stage(self, ctx: ProviderContext, generated: Generated) -> None:  # noqa: B027
        """Do any provider-side work before the value is published to staging (usually none)."""

    def promote(self, ctx: ProviderContext, generated: Generated) -> None:  # noqa: B027
        """Do any provider-side work when the value becomes current (usually none)."""

    @abstractmethod
    def revoke(
        self, ctx: ProviderContext, ref: str, value: Secret | None
    ) -> Mapping[str, str] | None:
        """Revoke the credential `ref` (value `value` when still held); return notes.

        Revoking one that is already gone succeeds. Raises `NeedsPersonError` when a person
        must revoke it (then the engine calls `verify_revoked` after `rotate confirm`),
        `RetryLaterError` when the outcome is not known yet.
        """

    @abstractmethod
    def verify_revoked(self, ctx: ProviderContext, ref: str, value: Secret) -> bool:
        """Return True when the provider now refuses the old `value`.

        False means "not yet": revocation is eventual, so the engine checks again later.
        `NotSupportedError` when the provider offers no way to tell.
        """

    def canonical_ref(self, ctx: ProviderContext, ref: str) -> str:
        """Return `ref` (a person's `rotate import --ref`) in the form `revoke` expects.

        A provider whose references come in more than one form resolves any of them to
        the one it stores, asking the provider that it names a live credential, and raises
        `BadInputError` naming the accepted forms otherwise. The default takes `ref` as is.
        """
        return ref

    def names_ref(self, ctx: ProviderContext, ref: str, value: Secret) -> bool | None:
        """Return whether `value` is the credential `ref` names, or None if it cannot tell.

        For `rotate import --verify`: a value accepted by the provider but belonging to
        another credential would make a later rotation revoke the wrong one. Most
        providers cannot map a value to its id (Resend and Stripe list ids, never values).
        """
        return None

    def instruction(self, ctx: ProviderContext, step: str) -> str:
        """Return what a person must do for `step` of this rotation, or an empty string."""
        return ""


# Only short code-like tokens from error bodies are repeated in messages: free text can
# echo part of a key (Stripe's "Invalid API Key provided: sk_test_****abcd").
_CODE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


def error_codes(response: httpx.Response) -> tuple[str, ...]:
    """Return the machine-readable error codes of an answer (Resend, Stripe, Google, OAuth)."""
    try:
        body = jsonlib.loads(response.content)
    except ValueError:
        return ()
    found: list[Any] = []
    if isinstance(body, dict):
        found.append(body.get("name"))
        error = body.get("error")
        if isinstance(error, str):
            found.append(error)
        elif isinstance(error, dict):
            found += [error.get("code"), error.get("type"), error.get("status")]
            details = error.get("details")
            if isinstance(details, list):
                found += [d.get("reason") for d in details if isinstance(d, dict)]
    return tuple(c for c in found if isinstance(c, str) and _CODE.fullmatch(c))


def raise_for(response: httpx.Response, provider: str, operation: str) -> None:
    """Return for a 2xx answer; raise the exception the contract maps any other one to."""
    status = response.status_code
    if 200 <= status < 300:
        return
    from rotator.redact import scrub

    codes = error_codes(response)
    # A code-like token can be the credential itself echoed back (Resend and Google keys
    # look like codes): scrub every value this process holds before it joins a message.
    detail = scrub(f" ({'/'.join(codes)})") if codes else ""
    kw: dict[str, Any] = {"provider": provider, "operation": operation, "status": status}
    if status == 429 or status == 408 or status >= 500:
        from providers.http import parse_retry_after

        raise RetryLaterError(
            f"the provider could not answer now{detail}; the step is retried later",
            retry_after=parse_retry_after(response.headers.get("retry-after")),
            **kw,
        )
    if status in (401, 403):
        raise ProviderRefusedError(
            f"the credential used was refused{detail}; check that it is valid and allowed "
            "to do this",
            **kw,
        )
    if status == 404:
        raise ProviderRefusedError(f"not found{detail}", **kw)
    raise ProviderRefusedError(f"the request was refused{detail}", **kw)


def json_body(response: httpx.Response, provider: str, operation: str) -> dict[str, Any]:
    """Return the JSON object of an answer, refusing anything else without quoting it."""
    try:
        body = jsonlib.loads(response.content)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ProviderRefusedError(
            "the answer is not the documented JSON object",
            provider=provider,
            operation=operation,
            status=response.status_code,
        ) from None
    return body


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


_created: dict[str, datetime] = {}
"""Digest of a value made or taken in this process → when (never the value itself)."""


def _digest(value: Secret) -> str:
    return hashlib.sha256(value.reveal().encode("utf-8")).hexdigest()


def credential_name(ctx: ProviderContext, *, max_length: int = 50) -> str:
    """Return the name of this rotation's credential: `rotator-<secret>-<rotation id>`.

    Lowercase `[a-z0-9-]`, starting with a letter, at most `max_length` characters
    (Resend allows 50, a Google keyId 63), and the same for every attempt of a rotation
    so that a retry finds what an earlier attempt created. The rotation id is kept whole
    when it fits, because it is what makes the name unique; the secret part is shortened.
    """
    prefix = "rotator"
    rotation = _slug(ctx.rotation_id)
    if not rotation or len(prefix) + 1 + len(rotation) > max_length:
        digest = hashlib.sha256(ctx.rotation_id.encode()).hexdigest()
        rotation = digest[: max(8, min(32, max_length - len(prefix) - 10))]
    room = max_length - len(prefix) - len(rotation) - 2
    secret = _slug(ctx.secret_name.removeprefix("BANDOFBAKERS_"))
    if ctx.scope_env:
        secret = f"{secret}-{_slug(ctx.scope_env)}"
    secret = secret[:room].strip("-") if room > 0 else ""
    parts = [prefix, secret, rotation] if secret else [prefix, rotation]
    return "-".join(parts)[:max_length].strip("-")


def env_flag(ctx: ProviderContext) -> str:
    """Return the `--env <name>` part of a command for a per-environment secret."""
    return f" --env {ctx.scope_env}" if ctx.scope_env else ""


class HttpProvider(Provider):
    """Own the shared parts of an HTTP provider: URLs, auth headers, answer mapping."""

    # Each URL an inventory `[providers.<name>]` table may override, with its default.
    default_urls: ClassVar[Mapping[str, str]] = {}

    def url(self, ctx: ProviderContext, path: str = "", *, key: str = "base_url") -> str:
        """Return `path` joined to the URL `key` from `ctx.urls`, else the default."""
        base = ctx.urls.get(key) or self.default_urls.get(key)
        if not base:
            raise NotSupportedError(
                f"no URL configured for {key!r}", provider=self.name, operation="config"
            )
        if not path:
            return base
        return f"{base.rstrip('/')}/{path.lstrip('/')}"

    def send(
        self,
        ctx: ProviderContext,
        method: str,
        url: str,
        *,
        operation: str,
        idempotent: bool,
        token: Secret | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        allow: Collection[int] = (),
    ) -> httpx.Response:
        """Send a request with `token` as bearer; raise for answers outside 2xx and `allow`."""
        sent_headers = dict(headers or {})
        if token is not None:
            sent_headers["Authorization"] = f"Bearer {token.reveal()}"
        response = ctx.http.request(
            method,
            url,
            provider=self.name,
            operation=operation,
            idempotent=idempotent,
            headers=sent_headers,
            params=params,
            json=json,
            data=data,
        )
        if response.status_code not in allow:
            raise_for(response, self.name, operation)
        return response

    # Seconds after creation during which a refusal may be propagation (docs/contracts.md
    # gives each provider's source); `propagation_seconds` in the options overrides it.
    default_propagation: ClassVar[float] = 0.0

    def remember_created(self, value: Secret) -> None:
        """Note when this process made or took `value`, for `while_propagating`."""
        _created[_digest(value)] = clock.now()

    def while_propagating(
        self,
        ctx: ProviderContext,
        value: Secret,
        check: Callable[[], None],
        *,
        person_waiting: bool = False,
    ) -> None:
        """Run `check`; while it refuses a value younger than the window, wait and retry.

        Waits inline (the client's sleep) up to `validate_wait` seconds (default 60), then
        asks to be retried later while the value is still inside the window; a refusal
        after the window is final. With `person_waiting` (a value typed at `rotate
        supply`) it waits only `supply_wait` seconds (default 15) and then gives the
        provider's refusal itself, so a mistyped value is not mistaken for a new one.
        """
        window = float(ctx.options.get("propagation_seconds", self.default_propagation))
        key = "supply_wait" if person_waiting else "validate_wait"
        budget = float(ctx.options.get(key, 15 if person_waiting else 60))
        last: ProviderRefusedError | None = None
        waited, delay = 0.0, 2.0
        while True:
            try:
                check()
                return
            except ProviderRefusedError as refused:
                age = self._age(ctx, value)
                if age is None or age >= window:
                    raise
                left, last = window - age, refused
            if waited >= budget and person_waiting and last is not None:
                raise last
            if waited >= budget:
                raise RetryLaterError(
                    f"{ctx.secret_name}: the new value is still refused {age:.0f}s after it "
                    f"was created; {self.name} may take up to {window:.0f}s to accept it",
                    retry_after=min(30.0, left),
                    provider=self.name,
                    operation="validate",
                )
            step = min(delay, left, budget - waited)
            ctx.http.sleep(step)
            waited += step
            delay = min(delay * 2, 15.0)

    def _age(self, ctx: ProviderContext, value: Secret) -> float | None:
        created = ctx.created_at or _created.get(_digest(value))
        if created is None:
            return None
        return (clock.now() - created).total_seconds()

    def option(self, ctx: ProviderContext, key: str, operation: str) -> Any:
        """Return the required option `key`, refusing clearly when the inventory lacks it."""
        value = ctx.options.get(key)
        if value in (None, ""):
            where = f" (environment {ctx.scope_env})" if ctx.scope_env else ""
            raise ProviderRefusedError(
                f"option {key!r} is not set for {ctx.secret_name}{where} in the inventory",
                provider=self.name,
                operation=operation,
            )
        return value
