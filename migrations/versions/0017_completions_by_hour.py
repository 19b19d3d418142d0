"""Hourly rows that hold a completion, by activity and hour: a window open to the present
counts its completers from these alone (analytics.reads.activity_summaries).

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "analytics_hourly_completed",
        "analytics_hourly",
        ["store_id", "activity_key", "hour"],
        postgresql_include=["learner_key"],
        postgresql_where=sa.text("completed_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("analytics_hourly_completed", "analytics_hourly")
