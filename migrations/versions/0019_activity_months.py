"""Per activity and local month: the learners active in it, and its figures.

A window of the activity list that holds whole months reads them from these, and only its
cut ends from the hourly rows. A learner who comes back to a programme in thirty hours of a
month is thirty hourly rows but one row here (bench.leaders, the courses from July on at
1,000,000 statements: 1,330,000 hourly rows against 656,000 here).

The rows are counted from the hourly rollup, in each store's recorded zone. The learners'
rows are only inserted into, so they are vacuumed at every 2% of growth like the hourly
rows, for index-only scans.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def _store() -> sa.Column[int]:
    return sa.Column(
        "store_id", sa.BigInteger, sa.ForeignKey("stores.id", ondelete="CASCADE"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "analytics_month_learners",
        _store(),
        sa.Column("activity_key", sa.Text, nullable=False),
        sa.Column("month", sa.Integer, nullable=False),
        sa.Column("learner_key", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("store_id", "activity_key", "month", "learner_key"),
    )
    op.create_table(
        "analytics_activity_months",
        _store(),
        sa.Column("activity_key", sa.Text, nullable=False),
        sa.Column("month", sa.Integer, nullable=False),
        sa.Column("statements", sa.BigInteger, nullable=False),
        sa.Column("completions", sa.BigInteger, nullable=False),
        sa.Column("duration_seconds", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("store_id", "activity_key", "month"),
    )
    op.execute("ALTER TABLE analytics_month_learners SET (autovacuum_vacuum_insert_scale_factor = 0.02)")
    op.execute("""
        INSERT INTO analytics_month_learners (store_id, activity_key, month, learner_key)
        SELECT DISTINCT h.store_id, h.activity_key, analytics_period_of('month', h.hour AT TIME ZONE z.zone),
               h.learner_key
          FROM analytics_hourly h JOIN analytics_zone z ON z.store_id = h.store_id
         WHERE h.activity_key <> ''
    """)
    op.execute("""
        INSERT INTO analytics_activity_months
               (store_id, activity_key, month, statements, completions, duration_seconds)
        SELECT h.store_id, h.activity_key, analytics_period_of('month', h.hour AT TIME ZONE z.zone),
               sum(h.statements), sum(h.completions), sum(h.duration_seconds)
          FROM analytics_hourly h JOIN analytics_zone z ON z.store_id = h.store_id
         WHERE h.activity_key <> ''
         GROUP BY 1, 2, 3
    """)


def downgrade() -> None:
    op.drop_table("analytics_activity_months")
    op.drop_table("analytics_month_learners")
