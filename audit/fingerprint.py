"""Fingerprint a secret value for the audit trail: keyed HMAC, never a plain hash.

A plain hash of a short or guessable credential can be brute-forced from the trail; an
HMAC under the fingerprint key cannot without that key, yet the same value always gives
the same fingerprint, so `rotate audit hash` can find where a value was used.
"""

from __future__ import annotations

import hashlib
import hmac

from rotator.errors import KeyMaterialError
from rotator.secret import Secret

PREFIX = "hmac-sha256:"


def fingerprint(key: bytes, value: Secret) -> str:
    """Return `hmac-sha256:<hex>` of the value under the fingerprint key."""
    if not isinstance(value, Secret):
        raise TypeError("fingerprint takes a Secret")
    if not isinstance(key, bytes) or len(key) < 16:
        raise KeyMaterialError("the audit fingerprint key is missing or shorter than 16 bytes")
    return PREFIX + hmac.new(key, value.reveal_bytes(), hashlib.sha256).hexdigest()
