"""The tool's own credentials, stored encrypted, and their rotations (rotator/own/models.py)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"

OWN_CURRENT_WHERE = "state = 'current'"
OWN_IN_FLIGHT_WHERE = "state NOT IN ('done', 'failed')"


def upgrade() -> None:
    op.create_table(
        "own_credential",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("provider_ref", sa.String(), nullable=True),
        sa.Column("fingerprint", sa.String(), nullable=True),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("key_id", sa.String(), nullable=False),
        sa.Column("rotation_id", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("notes", sa.String(), nullable=False),
    )
    op.create_index("ix_own_credential_name", "own_credential", ["name"])
    op.create_index(
        "uq_own_credential_current",
        "own_credential",
        ["name"],
        unique=True,
        sqlite_where=sa.text(OWN_CURRENT_WHERE),
        postgresql_where=sa.text(OWN_CURRENT_WHERE),
    )
    op.create_table(
        "own_rotation",
        sa.Column("id", sa.String(), primary_key=True),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("old_id", sa.String(), nullable=True),
        sa.Column("new_id", sa.String(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_own_rotation_name", "own_rotation", ["name"])
    op.create_index(
        "uq_own_rotation_in_flight",
        "own_rotation",
        ["name"],
        unique=True,
        sqlite_where=sa.text(OWN_IN_FLIGHT_WHERE),
        postgresql_where=sa.text(OWN_IN_FLIGHT_WHERE),
    )


def downgrade() -> None:
    op.drop_table("own_rotation")
    op.drop_table("own_credential")
