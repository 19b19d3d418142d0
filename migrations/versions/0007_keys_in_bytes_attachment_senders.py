"""Index keys hashed by their size in bytes; who sent each attachment's content.

Keys used to be hashed above 512 characters; now above 512 UTF-8 bytes, since PostgreSQL
caps a btree entry in bytes. Keys of at most 512 characters but more than 512 bytes (long
non-ASCII IRIs or addresses) were stored as they are and are hashed here, as the code now
looks them up.

``attachment_senders`` records which credential sent an attachment's content, so that a
``statements/read/mine`` credential is served only content it sent itself. Existing
attachments are credited to the credentials whose statements declare them without a
``fileUrl`` (those statements had to carry the content).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# (table, column, length of the key's prefix)
_KEYS = [
    ("statement_index", "key", 2),
    ("activities", "key", 0),
    ("analytics_hourly", "activity_key", 0),
    ("analytics_hourly", "learner_key", 0),
    ("analytics_progress", "activity_key", 0),
    ("analytics_progress", "learner_key", 0),
    ("analytics_activity", "activity_key", 0),
    ("analytics_presence", "learner_key", 0),
    ("analytics_children", "parent_key", 0),
    ("analytics_children", "child_key", 0),
]


def upgrade() -> None:
    for table, column, prefix in _KEYS:
        op.execute(f"""
            UPDATE {table}
               SET {column} = left({column}, {prefix}) || '#'
                   || encode(sha256(convert_to(substr({column}, {prefix + 1}), 'UTF8')), 'hex')
             WHERE octet_length({column}) > 512 AND length({column}) <= 512
        """)
    op.create_table(
        "attachment_senders",
        sa.Column("store_id", sa.BigInteger, nullable=False),
        sa.Column("sha2", sa.Text, nullable=False),
        sa.Column("credential", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("store_id", "sha2", "credential"),
        sa.ForeignKeyConstraint(
            ["store_id", "sha2"], ["attachments.store_id", "attachments.sha2"], ondelete="CASCADE"
        ),
    )
    op.execute("""
        INSERT INTO attachment_senders (store_id, sha2, credential)
        SELECT DISTINCT s.store_id, lower(a ->> 'sha2'), s.credential
          FROM statements s, jsonb_array_elements(s.statement -> 'attachments') AS a
         WHERE s.statement ? 'attachments' AND NOT a ? 'fileUrl'
           AND EXISTS (SELECT FROM attachments t
                        WHERE t.store_id = s.store_id AND t.sha2 = lower(a ->> 'sha2'))
        ON CONFLICT DO NOTHING
    """)


def downgrade() -> None:
    op.drop_table("attachment_senders")
    # Hashed keys cannot be turned back into their values; the old code finds keys of at
    # most 512 characters verbatim, so those rows stay unreachable until a rebuild.
