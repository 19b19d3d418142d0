"""The names statements give activities, for analytics answers about activities that have
no canonical definition (one is kept only from credentials with the `define` scope).

Filled as statements are folded; `lrs analytics rebuild` fills it for a store's past
statements.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "analytics_names",
        sa.Column("store_id", sa.BigInteger, sa.ForeignKey("stores.id", ondelete="CASCADE"), nullable=False),
        sa.Column("activity_key", sa.Text, nullable=False),
        sa.Column("activity_id", sa.Text, nullable=False),
        sa.Column("name", JSONB, nullable=False),
        sa.PrimaryKeyConstraint("store_id", "activity_key"),
    )


def downgrade() -> None:
    op.drop_table("analytics_names")
