"""Generate a synthetic, valid, signed trail fast, for benchmarks and tests of the verifier.

Entries are built from a template rather than `encode_entry` so a million of them take
seconds; a test pins that the template yields exactly the canonical bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import BinaryIO

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.checkpoint import checkpoint_body, sign_note
from audit.export import ExportSummary, checkpoint_line, export_header
from audit.verify import ENTRY_DOMAIN_TAG, ZERO_HASH

SYNTHETIC_START = datetime(2026, 1, 1, tzinfo=UTC)
SYNTHETIC_FIELDS = {
    "actor": "cron",
    "details": {"outcome": "ok", "step": "stage"},
    "environment": "staging",
    "host": "bench-host",
    "secret": "BANDOFBAKERS_RESEND_API_KEY",
    "tool_version": "0.0.0",
    "event_type": "rotation.step",
}
_TEMPLATE = (
    '{"actor":"cron","details":{"outcome":"ok","step":"stage"},"environment":"staging",'
    '"host":"bench-host","prev":"%s","rotation_id":"rot-%d","secret":"BANDOFBAKERS_RESEND_API_KEY",'
    '"seq":%d,"time":"%s","tool_version":"0.0.0","type":"rotation.step","v":1}'
)


def synthetic_entries(
    count: int, start: datetime = SYNTHETIC_START
) -> Iterator[tuple[int, bytes, str]]:
    """Yield `(seq, stored bytes, entry hash)` of a valid chain of `count` entries."""
    prev = ZERO_HASH
    for seq in range(1, count + 1):
        moment = start + timedelta(seconds=seq)
        stamp = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        stored = (_TEMPLATE % (prev, seq // 16, seq, stamp)).encode()
        prev = hashlib.sha256(ENTRY_DOMAIN_TAG + bytes.fromhex(prev) + stored).hexdigest()
        yield seq, stored, prev


def write_synthetic_export(
    out: BinaryIO,
    count: int,
    signing_key: Ed25519PrivateKey,
    *,
    origin: str = "rotator.example/synthetic",
    key_name: str = "rotator.example-synthetic",
    checkpoint_every: int = 10_000,
) -> ExportSummary:
    """Write an export of `count` synthetic entries, checkpointed every so often and at the end."""
    pem = signing_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    out.write(export_header(origin, pem, key_name))
    last_body: bytes | None = None
    n_checkpoints = 0
    for seq, stored, digest in synthetic_entries(count):
        out.write(stored + b"\n")
        if seq % checkpoint_every == 0 or seq == count:
            last_body = checkpoint_body(origin, seq, digest, last_body)
            out.write(checkpoint_line(sign_note(last_body, signing_key, key_name)))
            n_checkpoints += 1
    return ExportSummary(count, n_checkpoints)
