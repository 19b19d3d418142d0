"""Analytics rollups: learner activity per hour, and parent/child activities.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "analytics_hourly",
        sa.Column("store_id", sa.BigInteger, sa.ForeignKey("stores.id", ondelete="CASCADE"), nullable=False),
        sa.Column("activity_key", sa.Text, nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("learner_key", sa.Text, nullable=False),
        sa.Column("activity_id", sa.Text, nullable=False),
        sa.Column("learner", sa.Text, nullable=False),
        sa.Column("learner_name", sa.Text),
        sa.Column("statements", sa.Integer, nullable=False),
        sa.Column("completions", sa.Integer, nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True)),
        sa.Column("passed", sa.Boolean, nullable=False),
        sa.Column("failed", sa.Boolean, nullable=False),
        sa.Column("best_score", sa.Float),
        sa.Column("last_score", sa.Float),
        sa.Column("last_score_at", sa.DateTime(timezone=True)),
        sa.Column("duration_seconds", sa.Float, nullable=False),
        sa.Column("groups", JSONB, nullable=False),
        sa.PrimaryKeyConstraint("store_id", "activity_key", "hour", "learner_key"),
    )
    op.create_table(
        "analytics_children",
        sa.Column("store_id", sa.BigInteger, sa.ForeignKey("stores.id", ondelete="CASCADE"), nullable=False),
        sa.Column("parent_key", sa.Text, nullable=False),
        sa.Column("child_key", sa.Text, nullable=False),
        sa.Column("child_id", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("store_id", "parent_key", "child_key"),
    )


def downgrade() -> None:
    op.drop_table("analytics_children")
    op.drop_table("analytics_hourly")
