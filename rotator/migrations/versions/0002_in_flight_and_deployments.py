"""One rotation in flight per unit (a partial unique index) and what each target serves."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"

IN_FLIGHT_WHERE = "active AND state NOT IN ('planned', 'revoked')"


def upgrade() -> None:
    op.create_index(
        "uq_rotation_in_flight",
        "rotation",
        ["secret_id"],
        unique=True,
        sqlite_where=sa.text(IN_FLIGHT_WHERE),
        postgresql_where=sa.text(IN_FLIGHT_WHERE),
    )
    op.create_table(
        "deployment",
        sa.Column("secret_id", sa.Integer(), sa.ForeignKey("secret.id"), primary_key=True),
        sa.Column("environment", sa.String(), primary_key=True),
        sa.Column("target", sa.String(), primary_key=True),
        sa.Column("serving", sa.String(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("deployment")
    op.drop_index("uq_rotation_in_flight", table_name="rotation")
