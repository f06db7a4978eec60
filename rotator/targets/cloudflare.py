"""Call the Cloudflare v4 API and turn its envelope into a result or a clear error.

Every answer is `{"success", "errors": [{"code", "message"}], "messages", "result"}`.
Rate limits (429, the 5-minute block) and 502/503/504 are retried or turned into
`RetryLaterError` by the shared HTTP layer before an answer reaches this module.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from rotator.errors import RetryLaterError, TargetConfigError, TargetError
from rotator.secret import MASK, Secret

if TYPE_CHECKING:
    # Types only: the inventory validator loads this module on every command.
    from providers.base import CredentialSource
    from providers.http import HttpClient

DEFAULT_BASE_URL = "https://api.cloudflare.com/client/v4"
CREDENTIAL_NAME = "cloudflare_api_token"
AUTH_ERROR = 10000


def segment(value: str) -> str:
    """Quote one path segment (an account id, a script or project name)."""
    return quote(value, safe="")


class CloudflareError(TargetError):
    """Cloudflare answered with `success: false`; `codes` lets callers map known codes."""

    def __init__(self, message: str, *, status: int, codes: tuple[int, ...]) -> None:
        self.status = status
        self.codes = codes
        super().__init__(message)


class CloudflareApi:
    """Send authenticated requests for one target and unwrap the envelope."""

    def __init__(
        self,
        http: HttpClient,
        credentials: CredentialSource,
        urls: Mapping[str, str],
        *,
        kind: str,
        what: str,
    ) -> None:
        self._http = http
        self._credentials = credentials
        self.base_url = urls.get("base_url", DEFAULT_BASE_URL).rstrip("/")
        self._kind = kind
        self._what = what

    def call(
        self,
        method: str,
        path: str,
        *,
        operation: str,
        idempotent: bool,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        hide: Iterable[Secret] = (),
    ) -> Any:
        """Send one request and return the envelope's `result`.

        `hide` lists values that must not reach an error message even if Cloudflare
        echoes them back.
        """
        token = self._credentials.secret(CREDENTIAL_NAME)
        response = self._http.request(
            method,
            f"{self.base_url}{path}",
            provider=self._kind,
            operation=operation,
            idempotent=idempotent,
            headers={"Authorization": f"Bearer {token.reveal()}"},
            params=params,
            json=json,
        )
        status = response.status_code
        # The shared budget (rotator/store/cloudflare_budget.py), when the runtime installed
        # one, reads Cloudflare's own count of what is left for every client of the token.
        budget = self._http.limits.get(self._kind)
        observe = getattr(budget, "observe_headers", None)
        if callable(observe):
            observe(response.headers)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or "success" not in body:
            if status >= 500:
                raise RetryLaterError(
                    f"Cloudflare answered {status} to {operation} on {self._what}",
                    provider=self._kind,
                    operation=operation,
                    status=status,
                )
            raise TargetError(
                f"Cloudflare answered {status} to {operation} on {self._what} "
                "without its JSON envelope; is targets.cloudflare.base_url right?"
            )
        if body.get("success") is True and status < 400:
            return body.get("result")
        codes, detail = _errors(body, [token, *hide])
        if status in (401, 403) or AUTH_ERROR in codes:
            raise TargetConfigError(
                f"Cloudflare refused the API token for {operation} on {self._what} "
                f"(HTTP {status}{detail}): check the credential {CREDENTIAL_NAME!r} in "
                "[credentials] of the inventory (the environment variable or file it names) "
                "and that the token has Workers Scripts Edit and Cloudflare Pages Edit "
                "on this account"
            )
        if status >= 500:
            raise RetryLaterError(
                f"Cloudflare failed {operation} on {self._what}{detail}",
                provider=self._kind,
                operation=operation,
                status=status,
            )
        raise CloudflareError(
            f"Cloudflare refused {operation} on {self._what} (HTTP {status}{detail})",
            status=status,
            codes=codes,
        )


def check_variables(options: Mapping[str, Any]) -> Iterable[str]:
    """Return problems with a target's `variables` option (a list of variable names)."""
    declared = options.get("variables")
    if declared is None:
        return
    if not isinstance(declared, list) or not all(
        isinstance(name, str) and name.strip() for name in declared
    ):
        yield (
            "variables: must be a list of variable names this target holds "
            '(e.g. ["BANDOFBAKERS_RESEND_API_KEY"])'
        )


def held_only(
    values: Mapping[str, Secret],
    held: Iterable[str],
    notes: list[str],
    describe: str,
) -> dict[str, Secret]:
    """Keep the values of variables the target holds; note the ones left out.

    A target that never held a secret must not be handed it by a rotation: the app on it
    does not need it, and every extra copy is one more place a value can leak from.
    """
    names = set(held)
    kept = {name: value for name, value in values.items() if name in names}
    skipped = sorted(set(values) - names)
    if skipped:
        notes.append(
            f"{describe}: left {', '.join(skipped)} alone (the target does not hold "
            f"{'it' if len(skipped) == 1 else 'them'}; list it under the target's "
            "variables option to add it)"
        )
    return kept


def _errors(body: Mapping[str, Any], hide: Iterable[Secret]) -> tuple[tuple[int, ...], str]:
    """Return the error codes and a printable summary with hidden values masked."""
    codes: list[int] = []
    parts: list[str] = []
    errors = body.get("errors")
    for error in errors if isinstance(errors, list) else []:
        if not isinstance(error, dict):
            continue
        code = error.get("code")
        if isinstance(code, int):
            codes.append(code)
        message = str(error.get("message", ""))
        parts.append(f"error {code}: {message}" if message else f"error {code}")
    text = "; ".join(parts)
    for secret in hide:
        clear = secret.reveal()
        if clear:
            text = text.replace(clear, MASK)
    return tuple(codes), f", {text}" if text else ""
