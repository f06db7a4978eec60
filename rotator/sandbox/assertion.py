"""Hold the sandbox's service account and check JWT-bearer assertions signed with its key.

The checks follow Google's token endpoint (PROVIDERS.md §5): RS256 only, the signature
against the account's public key, `aud` the token URI, and a short-lived `iat`/`exp` pair.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import secrets
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"  # noqa: S105 (a URL, not a secret)
MAX_LIFETIME = 3600
CLOCK_SKEW = 300


class AssertionRejectedError(Exception):
    """The assertion is refused; `error` and `description` are what Google answers."""

    def __init__(self, description: str, error: str = "invalid_grant") -> None:
        super().__init__(description)
        self.error = error
        self.description = description


@dataclass(frozen=True)
class ServiceAccount:
    client_email: str
    project_id: str
    key_id: str
    private_key: rsa.RSAPrivateKey

    @classmethod
    def generate(cls, client_email: str, project_id: str) -> ServiceAccount:
        return cls(client_email, project_id, secrets.token_hex(20), _process_key())

    def key_file(self, token_uri: str) -> dict[str, str]:
        """Return the JSON key file Google would let you download for this account."""
        pem = self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode("ascii")
        return {
            "type": "service_account",
            "project_id": self.project_id,
            "private_key_id": self.key_id,
            "private_key": pem,
            "client_email": self.client_email,
            "client_id": str(int(self.key_id[:12], 16)),
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": token_uri,
        }


@functools.cache
def _process_key() -> rsa.RSAPrivateKey:
    """Generate one RSA key per process: test suites start many sandboxes, and each
    generation takes about 0.1 s; sandboxes still differ in key id and token URI."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _segment(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _json_segment(text: str) -> dict[str, Any]:
    try:
        value = json.loads(_segment(text))
    except (ValueError, binascii.Error) as exc:
        raise AssertionRejectedError("Invalid JWT: the assertion is malformed.") from exc
    if not isinstance(value, dict):
        raise AssertionRejectedError("Invalid JWT: the assertion is malformed.")
    return value


def verify_assertion(
    assertion: str,
    accounts: Mapping[str, ServiceAccount],
    audiences: Collection[str],
    now: datetime,
    keys: Mapping[str, ServiceAccount] | None = None,
    deleted: Collection[str] | None = None,
) -> tuple[ServiceAccount, dict[str, Any]]:
    """Return the account that signed `assertion` and its claims, or raise why not."""
    parts = assertion.split(".")
    if len(parts) != 3:
        raise AssertionRejectedError("Invalid JWT: the assertion is malformed.")
    header, claims = _json_segment(parts[0]), _json_segment(parts[1])
    if header.get("alg") != "RS256":
        raise AssertionRejectedError("Invalid JWT: only RS256 signatures are accepted.")
    account = accounts.get(str(claims.get("iss", "")))
    if account is None:
        raise AssertionRejectedError("Invalid grant: account not found")
    kid = header.get("kid")
    if kid is not None and kid != account.key_id:
        # Another key of the same account (IAM keys.create, rotator/sandbox/iam.py).
        other = (keys or {}).get(str(kid))
        if other is None or other.client_email != account.client_email:
            raise AssertionRejectedError("Invalid JWT Signature.")
        account = other
    if account.key_id in (deleted or ()):
        raise AssertionRejectedError("Invalid JWT Signature.")
    try:
        signature = _segment(parts[2])
        account.private_key.public_key().verify(
            signature,
            f"{parts[0]}.{parts[1]}".encode("ascii"),
            padding.PKCS1v15(),
            hashes.SHA256(),
        )
    except (InvalidSignature, binascii.Error, ValueError) as exc:
        raise AssertionRejectedError("Invalid JWT Signature.") from exc
    if claims.get("aud") not in audiences:
        raise AssertionRejectedError(
            "Invalid JWT: Failed audience check. The right audience is the token URI."
        )
    iat, exp = claims.get("iat"), claims.get("exp")
    moment = now.timestamp()
    if (
        not isinstance(iat, int | float)
        or not isinstance(exp, int | float)
        or exp - iat > MAX_LIFETIME
        or iat > moment + CLOCK_SKEW
        or exp <= moment
    ):
        raise AssertionRejectedError(
            "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable "
            "timeframe. Check your iat and exp values in the JWT claim."
        )
    if not str(claims.get("scope", "")).strip():
        raise AssertionRejectedError(
            "Invalid OAuth scope or ID token audience provided.", "invalid_scope"
        )
    return account, claims
