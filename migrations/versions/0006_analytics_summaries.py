"""Analytics summaries: progress per (activity, learner), figures per activity, and
store-wide figures per local period, so that the common questions read a few rows.

Existing rollups are carried over with SQL from ``analytics_hourly``. The period tables are
kept in each store's time zone (its setting, else Europe/Oslo, the LRS default); a store
whose zone differs gets them rebuilt by ``lrs analytics rebuild``.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _store() -> sa.Column[int]:
    return sa.Column(
        "store_id", sa.BigInteger, sa.ForeignKey("stores.id", ondelete="CASCADE"), nullable=False
    )


# The number of a local period: days and weeks (ISO, starting Monday) count days since
# 1970-01-01 to their first day; months count months since year 0; a "cell" is the hour of
# the week (Monday 00:00 is 0). IMMUTABLE so PostgreSQL can inline it.
_PERIOD_OF = """
CREATE FUNCTION analytics_period_of(kind text, local timestamp) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE kind
    WHEN 'day' THEN local::date - DATE '1970-01-01'
    WHEN 'week' THEN date_trunc('week', local)::date - DATE '1970-01-01'
    WHEN 'month' THEN extract(year FROM local)::integer * 12 + extract(month FROM local)::integer - 1
    WHEN 'cell' THEN (extract(isodow FROM local)::integer - 1) * 24 + extract(hour FROM local)::integer
  END
$$
"""

_PERIOD_START = """
CREATE FUNCTION analytics_period_start(kind text, period integer) RETURNS date
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE kind
    WHEN 'month' THEN make_date(period / 12, period % 12 + 1, 1)
    ELSE DATE '1970-01-01' + period
  END
$$
"""


def upgrade() -> None:
    op.create_table(
        "analytics_progress",
        _store(),
        sa.Column("activity_key", sa.Text, nullable=False),
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
        sa.Column("duration_seconds", sa.Float, nullable=False),
        sa.Column("groups", JSONB, nullable=False),
        sa.Column("was_completed", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("store_id", "activity_key", "learner_key"),
    )
    op.create_table(
        "analytics_activity",
        _store(),
        sa.Column("activity_key", sa.Text, nullable=False),
        sa.Column("activity_id", sa.Text, nullable=False),
        sa.Column("learners_started", sa.Integer, nullable=False),
        sa.Column("learners_completed", sa.Integer, nullable=False),
        sa.Column("duration_seconds", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("store_id", "activity_key"),
    )
    op.create_table(
        "analytics_zone",
        _store(),
        sa.Column("zone", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("store_id"),
    )
    op.create_table(
        "analytics_presence",
        _store(),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("period", sa.Integer, nullable=False),
        sa.Column("learner_key", sa.Text, nullable=False),
        sa.Column("hours", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("store_id", "kind", "period", "learner_key"),
    )
    op.create_table(
        "analytics_period",
        _store(),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("period", sa.Integer, nullable=False),
        sa.Column("learners", sa.Integer, nullable=False),
        sa.Column("statements", sa.BigInteger, nullable=False),
        sa.Column("completions", sa.BigInteger, nullable=False),
        sa.Column("duration_seconds", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("store_id", "kind", "period"),
    )
    op.execute(_PERIOD_OF)
    op.execute(_PERIOD_START)
    op.execute("""
        INSERT INTO analytics_progress
        SELECT store_id, activity_key, learner_key, min(activity_id), min(learner),
               (array_agg(learner_name ORDER BY last_at DESC)
                FILTER (WHERE learner_name IS NOT NULL))[1],
               sum(statements), sum(completions), min(first_at), max(last_at), min(completed_at),
               bool_or(passed), bool_or(failed), max(best_score), sum(duration_seconds),
               (array_agg(groups ORDER BY last_at DESC))[1], false
          FROM analytics_hourly WHERE activity_key <> ''
         GROUP BY store_id, activity_key, learner_key
    """)
    # Hourly rows keep figures only: who the learner is, and their groups, are now kept once
    # per (activity, learner) in analytics_progress; the last score was never read.
    for column in ("activity_id", "learner", "learner_name", "groups", "last_score", "last_score_at"):
        op.drop_column("analytics_hourly", column)
    op.execute("""
        INSERT INTO analytics_activity
        SELECT store_id, activity_key, min(activity_id), count(*), count(completed_at),
               sum(duration_seconds)
          FROM analytics_progress GROUP BY store_id, activity_key
    """)
    op.execute("""
        INSERT INTO analytics_zone
        SELECT id, COALESCE(settings ->> 'timezone', 'Europe/Oslo') FROM stores
    """)
    op.execute("""
        INSERT INTO analytics_presence
        SELECT h.store_id, k.kind, analytics_period_of(k.kind, h.hour AT TIME ZONE z.zone),
               h.learner_key, count(*)
          FROM analytics_hourly h JOIN analytics_zone z USING (store_id),
               unnest(ARRAY['day', 'week', 'month', 'cell']) AS k(kind)
         WHERE h.activity_key = ''
         GROUP BY 1, 2, 3, 4
    """)
    op.execute("""
        INSERT INTO analytics_period
        SELECT h.store_id, k.kind, analytics_period_of(k.kind, h.hour AT TIME ZONE z.zone),
               count(DISTINCT h.learner_key), sum(h.statements), sum(h.completions),
               sum(h.duration_seconds)
          FROM analytics_hourly h JOIN analytics_zone z USING (store_id),
               unnest(ARRAY['day', 'week', 'month', 'cell']) AS k(kind)
         WHERE h.activity_key = ''
         GROUP BY 1, 2, 3
    """)


def downgrade() -> None:
    # The dropped columns come back, filled in from the progress rows (store-wide rows have
    # none: their learner is their key), except the last score, which was never read.
    op.add_column("analytics_hourly", sa.Column("activity_id", sa.Text, nullable=False, server_default=""))
    op.add_column("analytics_hourly", sa.Column("learner", sa.Text, nullable=False, server_default=""))
    op.add_column("analytics_hourly", sa.Column("learner_name", sa.Text))
    op.add_column(
        "analytics_hourly", sa.Column("groups", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb"))
    )
    op.add_column("analytics_hourly", sa.Column("last_score", sa.Float))
    op.add_column("analytics_hourly", sa.Column("last_score_at", sa.DateTime(timezone=True)))
    op.execute("""
        UPDATE analytics_hourly h
           SET activity_id = p.activity_id, learner = p.learner, learner_name = p.learner_name,
               groups = p.groups
          FROM analytics_progress p
         WHERE p.store_id = h.store_id AND p.activity_key = h.activity_key
               AND p.learner_key = h.learner_key
    """)
    op.execute("UPDATE analytics_hourly SET learner = learner_key WHERE activity_key = ''")
    for column in ("activity_id", "learner", "groups"):
        op.alter_column("analytics_hourly", column, server_default=None)
    op.execute("DROP FUNCTION analytics_period_start(text, integer)")
    op.execute("DROP FUNCTION analytics_period_of(text, timestamp)")
    for table in (
        "analytics_period",
        "analytics_presence",
        "analytics_zone",
        "analytics_activity",
        "analytics_progress",
    ):
        op.drop_table(table)
