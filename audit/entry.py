"""Build the canonical bytes of an audit entry and refuse details that could carry a value.

The stored bytes are what the chain hashes, so they are produced in exactly one way:
JSON with sorted keys, compact separators, UTF-8, no NaN. Verification never
re-serialises; it hashes these bytes as stored.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from audit.verify import ENTRY_DOMAIN_TAG, ZERO_HASH, entry_hash
from rotator.secret import Secret

FORMAT_VERSION = 1
FINGERPRINT_PREFIX = "hmac-sha256:"

# Detail keys whose string value would be the credential itself; only a fingerprint may sit
# under them. Compared after lower-casing and turning "-" into "_".
VALUE_LIKE_KEYS = frozenset(
    {
        "value",
        "secret_value",
        "plaintext",
        "cleartext",
        "password",
        "passwd",
        "token",
        "access_token",
        "refresh_token",
        "api_key",
        "apikey",
        "client_secret",
        "private_key",
        "secret_key",
        "new_value",
        "old_value",
    }
)

__all__ = [
    "ENTRY_DOMAIN_TAG",
    "FORMAT_VERSION",
    "ZERO_HASH",
    "check_details",
    "decode_entry",
    "encode_entry",
    "entry_hash",
    "format_time",
]


def format_time(moment: datetime) -> str:
    """Return `moment` as UTC ISO 8601 with microseconds and a `Z`; refuse naive times."""
    if moment.tzinfo is None:
        raise ValueError("audit times must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _check_value(value: Any, path: str) -> None:
    if isinstance(value, Secret):
        raise TypeError(f"a Secret was passed in audit details at {path}: record a fingerprint")
    if value is None or isinstance(value, bool | int | str):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"audit details at {path} hold a non-finite number")
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_value(item, f"{path}[{index}]")
        return
    if isinstance(value, Mapping):
        check_details(value, path)
        return
    raise TypeError(f"audit details at {path} hold a {type(value).__name__}, not plain JSON")


def check_details(details: Mapping[str, Any], path: str = "details") -> None:
    """Raise `TypeError` unless `details` is plain JSON with no secret value in it.

    A `Secret` anywhere is a programming error, and so is a string under a key that names
    a credential (`token`, `password`, `value`...) unless it is an HMAC fingerprint.
    """
    for key, value in details.items():
        if not isinstance(key, str):
            raise TypeError(f"audit details at {path} have a non-string key")
        where = f"{path}.{key}"
        _check_value(value, where)
        normal = key.lower().replace("-", "_")
        if (
            normal in VALUE_LIKE_KEYS
            and isinstance(value, str)
            and not value.startswith(FINGERPRINT_PREFIX)
        ):
            raise TypeError(
                f"audit details at {where} look like a credential value; record a fingerprint"
            )


def _check_field(name: str, value: object, *, required: bool = False) -> None:
    if isinstance(value, Secret):
        raise TypeError(f"a Secret was passed as the audit field {name!r}")
    if value is None and not required:
        return
    if not isinstance(value, str):
        raise TypeError(f"the audit field {name!r} must be a str")


def encode_entry(
    *,
    seq: int,
    prev: str,
    time: datetime,
    actor: str,
    event_type: str,
    host: str | None = None,
    tool_version: str | None = None,
    secret: str | None = None,
    environment: str | None = None,
    rotation_id: str | None = None,
    details: Mapping[str, Any] | None = None,
    mac: str | None = None,
) -> bytes:
    """Return the canonical stored bytes of one entry, refusing anything unsafe.

    `mac` is the placeholder `audit.mac.ZERO_MAC` when the entry is to be sealed with the
    audit MAC key (see `audit.mac.seal`); without it the entry carries no `mac` key.
    """
    _check_field("actor", actor, required=True)
    _check_field("event_type", event_type, required=True)
    for name, value in (
        ("host", host),
        ("tool_version", tool_version),
        ("secret", secret),
        ("environment", environment),
        ("rotation_id", rotation_id),
    ):
        _check_field(name, value)
    if details is not None and not isinstance(details, Mapping):
        raise TypeError("audit details must be a mapping")
    check_details(details or {})
    if type(seq) is not int or seq < 1:
        raise ValueError("seq starts at 1")
    if len(prev) != 64 or prev != prev.lower() or not all(c in "0123456789abcdef" for c in prev):
        raise ValueError("prev must be a lowercase hex SHA-256")
    body = {
        "v": FORMAT_VERSION,
        "seq": seq,
        "prev": prev,
        "time": format_time(time),
        "actor": actor,
        "host": host,
        "tool_version": tool_version,
        "secret": secret,
        "environment": environment,
        "rotation_id": rotation_id,
        "type": event_type,
        "details": dict(details or {}),
    }
    if mac is not None:
        body["mac"] = mac
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def decode_entry(stored: bytes) -> dict[str, Any]:
    """Parse stored entry bytes for display; verification never relies on this."""
    value = json.loads(stored)
    if not isinstance(value, dict):
        raise ValueError("an audit entry is a JSON object")
    return value
