"""Get Google access tokens for a service account without an SDK (JWT bearer, RFC 7523).

Reads the service-account JSON key file, signs an RS256 assertion with `cryptography`
and exchanges it at the token endpoint (PROVIDERS.md §5). Tokens are cached per
service account and token URL until five minutes before they expire.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from providers.base import error_codes, json_body, raise_for
from rotator import clock as rotator_clock
from rotator.errors import ProviderRefusedError
from rotator.secret import Secret

if TYPE_CHECKING:
    from providers.http import HttpClient

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
DEFAULT_TOKEN_URL = "https://oauth2.googleapis.com/token"  # noqa: S105 (a URL, not a password)
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# Google refuses an assertion that lives longer than an hour.
ASSERTION_LIFETIME = 3600
REFRESH_MARGIN = 300.0

_cache: dict[tuple[str, str], tuple[Secret, float]] = {}
_cache_lock = threading.Lock()


@dataclass(frozen=True)
class ServiceAccountKey:
    """Hold the fields of a service-account key file that the token flow needs."""

    path: Path
    client_email: str
    private_key: Secret
    private_key_id: str
    token_uri: str


def _refused(message: str, *, provider: str, status: int | None = None) -> ProviderRefusedError:
    return ProviderRefusedError(message, provider=provider, operation="auth", status=status)


def load_service_account(path: Path, *, provider: str) -> ServiceAccountKey:
    """Read a service-account key file, refusing one that is missing or malformed."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise _refused(
            f"cannot read the service-account key file {path} ({exc.strerror or exc})",
            provider=provider,
        ) from None
    except ValueError:
        raise _refused(
            f"the service-account key file {path} is not JSON", provider=provider
        ) from None
    if not isinstance(raw, dict):
        raise _refused(
            f"the service-account key file {path} is not a JSON object", provider=provider
        )
    missing = [f for f in ("client_email", "private_key") if not isinstance(raw.get(f), str)]
    if missing:
        raise _refused(
            f"the service-account key file {path} lacks {', '.join(missing)}", provider=provider
        )
    return ServiceAccountKey(
        path=path,
        client_email=raw["client_email"],
        private_key=Secret(raw["private_key"]),
        private_key_id=str(raw.get("private_key_id") or ""),
        token_uri=str(raw.get("token_uri") or DEFAULT_TOKEN_URL),
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def sign_assertion(key: ServiceAccountKey, audience: str, issued_at: int, *, provider: str) -> str:
    """Return the RS256-signed JWT that asks `audience` for a cloud-platform token."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    try:
        private = serialization.load_pem_private_key(key.private_key.reveal_bytes(), None)
    except (ValueError, TypeError):
        raise _refused(
            f"the private_key in {key.path} ({key.client_email}) is not an unencrypted PEM key",
            provider=provider,
        ) from None
    if not isinstance(private, rsa.RSAPrivateKey):
        raise _refused(f"the private_key in {key.path} is not an RSA key", provider=provider)
    header: dict[str, str] = {"alg": "RS256", "typ": "JWT"}
    if key.private_key_id:
        header["kid"] = key.private_key_id
    claims = {
        "iss": key.client_email,
        "scope": SCOPE,
        "aud": audience,
        "iat": issued_at,
        "exp": issued_at + ASSERTION_LIFETIME,
    }
    signing_input = ".".join(
        _b64(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
    )
    signature = private.sign(signing_input.encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64(signature)}"


def access_token(
    http: HttpClient,
    key_path: Path,
    *,
    provider: str,
    token_url: str | None = None,
    clock: Callable[[], float] | None = None,
) -> Secret:
    """Return a cloud-platform access token for the service account in `key_path`."""
    key = load_service_account(key_path, provider=provider)
    url = token_url or key.token_uri
    cache_key = (key.client_email, url)
    # The one clock of rotator (moved by tests and the demo), not time.time directly.
    now = clock() if clock is not None else rotator_clock.now().timestamp()
    with _cache_lock:
        cached = _cache.get(cache_key)
    if cached is not None and cached[1] - REFRESH_MARGIN > now:
        return cached[0]
    # Fetched outside the lock: two threads may both fetch once, which Google allows.
    assertion = sign_assertion(key, url, int(now), provider=provider)
    response = http.request(
        "POST",
        url,
        provider=provider,
        operation="auth",
        idempotent=True,
        data={"grant_type": JWT_GRANT, "assertion": assertion},
    )
    if response.status_code == 400 and "invalid_grant" in error_codes(response):
        raise _refused(
            f"Google rejected the service-account key in {key.path} for {key.client_email} "
            "(invalid_grant: key deleted or disabled, account gone, or this host's clock "
            "is wrong)",
            provider=provider,
            status=400,
        )
    raise_for(response, provider, "auth")
    body: dict[str, Any] = json_body(response, provider, "auth")
    token = body.get("access_token")
    if not isinstance(token, str) or not token:
        raise _refused("the token answer has no access_token", provider=provider)
    lifetime = body.get("expires_in", 3599)
    expires_at = now + (float(lifetime) if isinstance(lifetime, int | float) else 3599.0)
    secret = Secret(token)
    with _cache_lock:
        _cache[cache_key] = (secret, expires_at)
    return secret


def clear_token_cache() -> None:
    """Forget every cached access token (tests, or after a service-account key change)."""
    with _cache_lock:
        _cache.clear()
