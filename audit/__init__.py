"""The audit trail: append-only, hash-chained, signed checkpoints, export, verify, report.

Import-light on purpose: `import audit` loads nothing, and each name is imported from its
module on first use, so `python -m audit.verify` runs with only `cryptography`.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from audit.checkpoint import (
        append_to_sink,
        make_checkpoint,
        should_checkpoint,
        sync_sink,
    )
    from audit.dbverify import verify_database
    from audit.entry import check_details, decode_entry, encode_entry
    from audit.export import ExportSummary, export
    from audit.fingerprint import fingerprint
    from audit.mac import ForgedEntryError
    from audit.report import render_report
    from audit.schema import install_append_only, postgres_roles_sql
    from audit.trail import append, authenticated_approvals, iter_events
    from audit.verify import (
        Checkpoint,
        CheckpointError,
        Problem,
        VerifyResult,
        entry_hash,
        load_public_key,
        parse_checkpoint,
        verify_checkpoint,
        verify_export,
    )

_HOMES = {
    "append": "audit.trail",
    "iter_events": "audit.trail",
    "authenticated_approvals": "audit.trail",
    "ForgedEntryError": "audit.mac",
    "sync_sink": "audit.checkpoint",
    "fingerprint": "audit.fingerprint",
    "check_details": "audit.entry",
    "decode_entry": "audit.entry",
    "encode_entry": "audit.entry",
    "entry_hash": "audit.verify",
    "install_append_only": "audit.schema",
    "postgres_roles_sql": "audit.schema",
    "make_checkpoint": "audit.checkpoint",
    "append_to_sink": "audit.checkpoint",
    "should_checkpoint": "audit.checkpoint",
    "Checkpoint": "audit.verify",
    "CheckpointError": "audit.verify",
    "parse_checkpoint": "audit.verify",
    "verify_checkpoint": "audit.verify",
    "ExportSummary": "audit.export",
    "export": "audit.export",
    "Problem": "audit.verify",
    "VerifyResult": "audit.verify",
    "load_public_key": "audit.verify",
    "verify_export": "audit.verify",
    "verify_database": "audit.dbverify",
    "render_report": "audit.report",
}

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "ExportSummary",
    "ForgedEntryError",
    "Problem",
    "VerifyResult",
    "append",
    "append_to_sink",
    "authenticated_approvals",
    "check_details",
    "decode_entry",
    "encode_entry",
    "entry_hash",
    "export",
    "fingerprint",
    "install_append_only",
    "iter_events",
    "load_public_key",
    "make_checkpoint",
    "parse_checkpoint",
    "postgres_roles_sql",
    "render_report",
    "should_checkpoint",
    "sync_sink",
    "verify_checkpoint",
    "verify_database",
    "verify_export",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'audit' has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value
    return value
