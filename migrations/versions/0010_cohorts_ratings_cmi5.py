"""Target groups (cohorts), their membership history and assignments; activity costs; the
rollup columns for cmi5 sessions and ratings; and a refold of every store's rollups.

The rollups gain what earlier folds did not keep (sessions, ratings, platform and language,
store-wide progress rows, the cmi5 verbs in the default sets), so they are emptied and every
statement is queued again: the background worker folds them, and analytics answers say how
far it has come (``as_of``) meanwhile.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_REFOLDED = (
    "analytics_names",
    "analytics_hourly",
    "analytics_children",
    "analytics_progress",
    "analytics_activity",
    "analytics_presence",
    "analytics_period",
)


def upgrade() -> None:
    for table in ("analytics_hourly", "analytics_progress"):
        op.add_column(table, sa.Column("sessions", sa.Integer, nullable=False, server_default=sa.text("0")))
        op.add_column(table, sa.Column("abandoned", sa.Integer, nullable=False, server_default=sa.text("0")))
    op.add_column("analytics_progress", sa.Column("rating_at", sa.DateTime(timezone=True)))
    for name in ("rating_scaled", "rating_raw", "rating_min", "rating_max"):
        op.add_column("analytics_progress", sa.Column(name, sa.Float))
    op.add_column("analytics_progress", sa.Column("rating_response", sa.Text))

    op.create_table(
        "cohorts",
        sa.Column("store_id", sa.BigInteger, sa.ForeignKey("stores.id", ondelete="CASCADE"), nullable=False),
        sa.Column("id", sa.BigInteger, sa.Identity(always=False), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("parent_id", sa.BigInteger),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("changed", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("store_id", "id"),
        sa.UniqueConstraint("store_id", "name", name="cohorts_store_id_name_key"),
        sa.ForeignKeyConstraint(["store_id", "parent_id"], ["cohorts.store_id", "cohorts.id"]),
    )
    op.create_table(
        "cohort_members",
        sa.Column("store_id", sa.BigInteger, nullable=False),
        sa.Column("cohort_id", sa.BigInteger, nullable=False),
        sa.Column("learner_key", sa.Text, nullable=False),
        sa.Column("learner", sa.Text, nullable=False),
        sa.Column("name", sa.Text),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("valid_to", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("store_id", "cohort_id", "learner_key", "valid_from"),
        sa.ForeignKeyConstraint(
            ["store_id", "cohort_id"], ["cohorts.store_id", "cohorts.id"], ondelete="CASCADE"
        ),
    )
    op.create_index("cohort_members_learner", "cohort_members", ["store_id", "learner_key"])
    op.create_table(
        "cohort_assignments",
        sa.Column("store_id", sa.BigInteger, nullable=False),
        sa.Column("cohort_id", sa.BigInteger, nullable=False),
        sa.Column("activity_key", sa.Text, nullable=False),
        sa.Column("activity_id", sa.Text, nullable=False),
        sa.Column("due", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("store_id", "cohort_id", "activity_key"),
        sa.ForeignKeyConstraint(
            ["store_id", "cohort_id"], ["cohorts.store_id", "cohorts.id"], ondelete="CASCADE"
        ),
    )
    op.create_index("cohort_assignments_activity", "cohort_assignments", ["store_id", "activity_key"])
    op.create_table(
        "activity_costs",
        sa.Column("store_id", sa.BigInteger, sa.ForeignKey("stores.id", ondelete="CASCADE"), nullable=False),
        sa.Column("activity_key", sa.Text, nullable=False),
        sa.Column("activity_id", sa.Text, nullable=False),
        sa.Column("amount", sa.Numeric(18, 2), nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("store_id", "activity_key"),
        sa.CheckConstraint("amount >= 0", name="activity_costs_amount_check"),
    )

    # Everything is folded again, from the statements, by the worker.
    op.execute("DELETE FROM rollup_queue")
    for table in _REFOLDED:
        op.execute(f"DELETE FROM {table}")
    op.execute("""
        INSERT INTO rollup_queue (store_id, stored, seqs, voided)
        SELECT store_id, min(stored), array_agg(seq ORDER BY seq), '{}'
          FROM statements WHERE NOT voided
         GROUP BY store_id, seq / 2000
         ORDER BY store_id, seq / 2000
    """)


def downgrade() -> None:
    for table in ("activity_costs", "cohort_assignments", "cohort_members", "cohorts"):
        op.drop_table(table)
    for name in ("rating_at", "rating_scaled", "rating_raw", "rating_min", "rating_max", "rating_response"):
        op.drop_column("analytics_progress", name)
    for table in ("analytics_hourly", "analytics_progress"):
        op.drop_column(table, "sessions")
        op.drop_column(table, "abandoned")
