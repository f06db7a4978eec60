"""Lease an own rotation to the runner driving it, so two hosts never drive one at once."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    op.add_column("own_rotation", sa.Column("claimed_by", sa.String(), nullable=True))
    op.add_column(
        "own_rotation", sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("own_rotation") as batch:
        batch.drop_column("claimed_until")
        batch.drop_column("claimed_by")
