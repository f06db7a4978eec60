"""Create the initial schema: secrets, versions, rotations, steps, approvals, audit."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def _when(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "secret",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(), nullable=False, index=True),
        sa.Column("scope_env", sa.String(), nullable=False),
        sa.Column("provider", sa.String(), nullable=False),
        _when("created_at"),
        sa.UniqueConstraint("name", "scope_env", name="uq_secret_name_scope"),
    )
    op.create_table(
        "rotation",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("secret_id", sa.Integer(), sa.ForeignKey("secret.id"), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("cycle", sa.String(), nullable=True),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("fence", sa.Integer(), nullable=False),
        sa.Column("claimed_by", sa.String(), nullable=True),
        _when("claimed_until", True),
        _when("next_check_at", True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("reason", sa.String(), nullable=True),
        sa.Column("actor", sa.String(), nullable=False),
        _when("created_at"),
        _when("updated_at"),
        _when("finished_at", True),
        sa.Column("facts", sa.String(), nullable=False),
    )
    op.create_index("ix_rotation_active_due", "rotation", ["active", "next_check_at"])
    op.create_index("ix_rotation_secret", "rotation", ["secret_id", "active"])
    # One quarterly rotation per secret and cycle, even when two runners plan at once.
    op.create_index("uq_rotation_cycle", "rotation", ["secret_id", "cycle"], unique=True)
    op.create_table(
        "credential_version",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("secret_id", sa.Integer(), sa.ForeignKey("secret.id"), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("provider_ref", sa.String(), nullable=True),
        sa.Column("fingerprint", sa.String(), nullable=True),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=True),
        sa.Column("key_id", sa.String(), nullable=True),
        sa.Column("rotation_id", sa.String(), nullable=True),
        _when("created_at"),
        _when("promoted_at", True),
        _when("revoked_at", True),
        sa.Column("notes", sa.String(), nullable=False),
    )
    op.create_index("ix_credential_secret_state", "credential_version", ["secret_id", "state"])
    op.create_table(
        "step_record",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("rotation_id", sa.String(), sa.ForeignKey("rotation.id"), nullable=False),
        sa.Column("step", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        _when("started_at"),
        _when("finished_at", True),
        sa.Column("detail", sa.String(), nullable=False),
    )
    op.create_index("ix_step_rotation", "step_record", ["rotation_id", "step"])
    op.create_table(
        "approval",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("rotation_id", sa.String(), sa.ForeignKey("rotation.id"), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("note", sa.String(), nullable=False),
        _when("at"),
    )
    op.create_index("ix_approval_rotation_id", "approval", ["rotation_id"])
    op.create_table(
        "audit_event",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("entry", sa.LargeBinary(), nullable=False),
        sa.Column("entry_hash", sa.String(), nullable=False),
        _when("time"),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("secret", sa.String(), nullable=True),
        sa.Column("environment", sa.String(), nullable=True),
        sa.Column("rotation_id", sa.String(), nullable=True),
        sa.Column("event_type", sa.String(), nullable=False),
    )
    op.create_index("ix_audit_time", "audit_event", ["time"])
    op.create_index("ix_audit_secret", "audit_event", ["secret"])
    op.create_index("ix_audit_type", "audit_event", ["event_type"])
    op.create_table(
        "audit_checkpoint",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("head_hash", sa.String(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        _when("created_at"),
    )
    op.create_table(
        "meta",
        sa.Column("key", sa.String(), primary_key=True),
        sa.Column("value", sa.String(), nullable=False),
    )
    op.create_table(
        "notification_log",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("dedupe_key", sa.String(), nullable=False),
        sa.Column("day", sa.String(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("error", sa.String(), nullable=True),
        _when("at"),
    )
    op.create_index("ix_notification_key", "notification_log", ["dedupe_key", "day"])

    from audit.schema import install_append_only

    install_append_only(op.get_bind())
