"""The public surface of `audit` is pinned, and importing it stays light."""

from __future__ import annotations

import subprocess
import sys

import audit

PUBLIC = [
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


def test_all_is_pinned_and_every_name_resolves() -> None:
    assert sorted(audit.__all__) == PUBLIC
    for name in PUBLIC:
        assert getattr(audit, name) is not None


def test_import_audit_loads_no_database_code() -> None:
    code = (
        "import sys, audit\n"
        "heavy = ('sqlalchemy', 'sqlmodel', 'audit.')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "[]", done.stderr
