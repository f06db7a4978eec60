"""Authenticate each entry with an HMAC under the audit MAC key, kept with the key files.

A database writer can compute the chain (it is public arithmetic) but not this MAC, so
the tool refuses to sign a checkpoint over an entry it did not write, and approvals
count only when their entry carries a valid MAC. The MAC sits inside the entry as the
top-level `"mac"` key, computed over the entry bytes with that value set to 64 zeros;
`seq` and `prev` are inside those bytes, so a MAC'd entry cannot be moved or replayed.

Keys are sorted and every key after `details` holds a scalar (in which a `"` is always
escaped), so the last `,"mac":"` in the bytes is the top-level one.
"""

from __future__ import annotations

import hmac

from rotator.errors import AuditError

__all__ = ["MAC_DOMAIN_TAG", "ZERO_MAC", "ForgedEntryError", "check_mac", "entry_mac", "seal"]

MAC_DOMAIN_TAG = b"rotator-audit-mac-v1\x00"
ZERO_MAC = "0" * 64
_MARK = b',"mac":"'
_ZERO = ZERO_MAC.encode()
_HEX = frozenset(b"0123456789abcdef")


class ForgedEntryError(AuditError):
    """An entry since the last checkpoint has no valid MAC: the tool did not write it.

    Exit 1, like a trail that does not verify: nothing is signed over it, and a person
    must find out who wrote to the database.
    """

    exit_code = 1


def entry_mac(key: bytes, zeroed: bytes) -> str:
    """Return the hex MAC of entry bytes whose `mac` value is `ZERO_MAC`."""
    return hmac.digest(key, MAC_DOMAIN_TAG + zeroed, "sha256").hex()


def seal(key: bytes, zeroed: bytes) -> bytes:
    """Return `zeroed` (an entry with `"mac":ZERO_MAC`) with its real MAC written in."""
    at = zeroed.rfind(_MARK)
    start = at + len(_MARK)
    if at < 0 or zeroed[start : start + 64] != _ZERO:
        raise ValueError("the audit entry has no mac placeholder")
    mac = entry_mac(key, zeroed).encode()
    return zeroed[:start] + mac + zeroed[start + 64 :]


def check_mac(key: bytes, stored: bytes) -> str | None:
    """Return None if `stored` carries a valid MAC under `key`, else the reason it does not."""
    at = stored.rfind(_MARK)
    if at < 0:
        return "no MAC"
    start = at + len(_MARK)
    given = stored[start : start + 64]
    expected = entry_mac(key, stored[:start] + _ZERO + stored[start + 64 :]).encode()
    if hmac.compare_digest(given, expected) and stored[start + 64 : start + 65] == b'"':
        return None
    if len(given) != 64 or stored[start + 64 : start + 65] != b'"' or not set(given) <= _HEX:
        return "malformed MAC"
    return "MAC mismatch (not written by the tool)"
