"""Progress rows by when learners started and completed: the dashboard's trends and the
assignments' completions read these ranges instead of every learner of an activity.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "analytics_progress_started", "analytics_progress", ["store_id", "activity_key", "first_at"]
    )
    op.create_index(
        "analytics_progress_completed",
        "analytics_progress",
        ["store_id", "activity_key", "completed_at"],
        postgresql_include=["learner_key"],
        postgresql_where=sa.text("completed_at IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("analytics_progress_completed", "analytics_progress")
    op.drop_index("analytics_progress_started", "analytics_progress")
