"""The rollup queue: analytics rollups are folded by a background worker, off the request path.

Each write transaction adds one row: the seqs of the statements it stored that count, and
the ids of earlier statements it voided. The worker folds rows and deletes them in one
transaction, so every statement is counted exactly once, whichever process folds it.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, UUID

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rollup_queue",
        sa.Column("store_id", sa.BigInteger, sa.ForeignKey("stores.id", ondelete="CASCADE"), nullable=False),
        sa.Column("id", sa.BigInteger, sa.Identity(always=False), nullable=False),
        sa.Column("stored", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seqs", ARRAY(sa.BigInteger), nullable=False),
        sa.Column("voided", ARRAY(UUID(as_uuid=True)), nullable=False),
        sa.PrimaryKeyConstraint("store_id", "id"),
    )
    op.create_index("rollup_queue_id", "rollup_queue", ["id"])


def downgrade() -> None:
    op.drop_table("rollup_queue")
