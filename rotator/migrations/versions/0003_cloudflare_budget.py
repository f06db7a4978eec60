"""Add the Cloudflare request budget shared by every runner (rotator/store/cloudflare_budget.py)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
# The lead re-chains this after 0002 at merge.
down_revision = "0002"


def upgrade() -> None:
    op.create_table(
        "cloudflare_budget",
        sa.Column("name", sa.String(), primary_key=True),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("spent", sa.Integer(), nullable=False),
        sa.Column("blocked_until", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("cloudflare_budget")
