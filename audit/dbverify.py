"""Verify the trail straight from the database, as `rotate audit verify` does without a file.

The same verifier as for an export reads the stored bytes in sequence order; the copy
columns of `audit_event` (time, actor, hash...) are never trusted.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.orm import Session

from audit.export import interleave, list_checkpoints, stream_entries
from audit.verify import NO_SINK_WARNING, Problem, TrailVerifier, VerifyResult, feed_sink


def verify_database(
    session: Session,
    public_key: Ed25519PublicKey,
    sink: Path | None = None,
    *,
    origin: str | None = None,
    on_problem: Callable[[Problem], None] | None = None,
) -> VerifyResult:
    """Verify the stored chain and checkpoints, and the external sink when given."""
    verifier = TrailVerifier(public_key, origin=origin, position_label="row", on_problem=on_problem)
    if sink is not None:
        feed_sink(verifier, sink)
    else:
        verifier.result.warnings.append(NO_SINK_WARNING)
    rows = checkpoints = 0
    for is_entry, data in interleave(stream_entries(session), list_checkpoints(session)):
        if is_entry:
            rows += 1
            verifier.entry(data, rows)
        else:
            checkpoints += 1
            verifier.checkpoint(data, checkpoints)
    return verifier.finish()
