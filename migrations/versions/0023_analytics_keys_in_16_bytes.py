"""The analytics rollups, target groups, costs and canonical activities keyed by 16 bytes.

Their activity and learner keys were the values themselves (a long one hashed to ``"#" +``
its SHA-256); each becomes the first 16 bytes of the SHA-256 of that text, as
``store.keys.analytics_key`` computes them, and the store as a whole (the activity ``""``)
the nil UUID. The rollups take 29% less room and PostgreSQL's part of a fold 13 to 16% less
CPU (bench/results/fold-keys-100k.md). Each table is rewritten once, its indexes rebuilt
after; writes and analytics wait for it: 19 s for 200,000 folded statements (800,000 hourly
rows, 430,000 progress rows) on the benchmark machine while it ran other benchmarks.

The downgrade gives the keys their text back from the texts the rows keep beside them (each
progress row names its activity and learner, the activity, name and child rows their
activity, memberships their learner, assignments and costs their activity). A key none of
them names any more (a parent activity whose learners were all erased, say) cannot be named
again; its rows are dropped, and ``lrs analytics rebuild`` counts them anew.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

# Each table's key columns.
_KEYS = {
    "activities": ["key"],
    "analytics_hourly": ["activity_key", "learner_key"],
    "analytics_progress": ["activity_key", "learner_key"],
    "analytics_activity": ["activity_key"],
    "analytics_presence": ["learner_key"],
    "analytics_month_learners": ["activity_key", "learner_key"],
    "analytics_activity_months": ["activity_key"],
    "analytics_children": ["parent_key", "child_key"],
    "analytics_names": ["activity_key"],
    "cohort_members": ["learner_key"],
    "cohort_assignments": ["activity_key"],
    "activity_costs": ["activity_key"],
}

_NIL = "CAST('00000000-0000-0000-0000-000000000000' AS uuid)"


def _hashed(text_key: str) -> str:
    """The 16-byte key of the text key ``text_key``, in SQL."""
    return (
        f"CASE WHEN {text_key} = '' THEN {_NIL}"
        f" ELSE CAST(encode(substr(sha256(convert_to({text_key}, 'UTF8')), 1, 16), 'hex') AS uuid) END"
    )


def _alter(table: str, kind: str, using: str) -> None:
    changes = ", ".join(f"ALTER COLUMN {c} TYPE {kind} USING {using.format(c=c)}" for c in _KEYS[table])
    op.execute(f"ALTER TABLE {table} {changes}")


def upgrade() -> None:
    for table in _KEYS:
        _alter(table, "uuid", _hashed("{c}"))


# Where the downgrade finds the texts: (table, column) pairs holding activity ids or learners.
_TEXTS = [
    ("analytics_progress", "activity_id"),
    ("analytics_progress", "learner"),
    ("analytics_activity", "activity_id"),
    ("analytics_names", "activity_id"),
    ("analytics_children", "child_id"),
    ("cohort_members", "learner"),
    ("cohort_assignments", "activity_id"),
    ("activity_costs", "activity_id"),
    ("activities", "activity_id"),
]


def downgrade() -> None:
    # The text key of a value, as store.keys made it before this revision.
    text_key = (
        "CASE WHEN octet_length(v) > 512 THEN '#' || encode(sha256(convert_to(v, 'UTF8')), 'hex') ELSE v END"
    )
    # The store as a whole is named "" whether or not a row says so.
    values = " UNION ".join(["SELECT '' AS v", *(f"SELECT {c} FROM {t}" for t, c in _TEXTS)])
    op.execute(f"""
        CREATE TEMPORARY TABLE analytics_key_texts AS
        SELECT DISTINCT ON (key) key, text
          FROM (SELECT {_hashed("t")} AS key, t AS text
                  FROM (SELECT {text_key} AS t FROM ({values}) AS found) AS keys) AS named
    """)
    op.execute("ALTER TABLE analytics_key_texts ADD PRIMARY KEY (key)")
    op.execute(
        "CREATE FUNCTION pg_temp.key_text(k uuid) RETURNS text LANGUAGE sql STABLE"
        " AS $$ SELECT text FROM analytics_key_texts WHERE key = k $$"
    )
    for table, columns in _KEYS.items():
        unnamed = " OR ".join(f"{c} NOT IN (SELECT key FROM analytics_key_texts)" for c in columns)
        op.execute(f"DELETE FROM {table} WHERE {unnamed}")
        _alter(table, "text", "pg_temp.key_text({c})")
    op.execute("DROP FUNCTION pg_temp.key_text(uuid)")
    op.execute("DROP TABLE analytics_key_texts")
