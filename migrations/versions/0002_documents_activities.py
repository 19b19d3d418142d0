"""Documents (state and profiles) and canonical activity definitions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "documents",
        sa.Column("store_id", sa.BigInteger, sa.ForeignKey("stores.id", ondelete="CASCADE"), nullable=False),
        sa.Column("owner_hash", sa.LargeBinary, nullable=False),
        sa.Column("doc_id", sa.Text, nullable=False),
        sa.Column("kind", sa.SmallInteger, nullable=False),
        sa.Column("activity_id", sa.Text, nullable=False),
        sa.Column("agent_key", sa.Text, nullable=False),
        sa.Column("registration", sa.Text, nullable=False),
        sa.Column("content", sa.LargeBinary, nullable=False),
        sa.Column("content_type", sa.Text, nullable=False),
        sa.Column("etag", sa.Text, nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("store_id", "owner_hash", "doc_id"),
    )
    op.create_table(
        "activities",
        sa.Column("store_id", sa.BigInteger, sa.ForeignKey("stores.id", ondelete="CASCADE"), nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("activity_id", sa.Text, nullable=False),
        sa.Column("definition", JSONB, nullable=False),
        sa.Column("updated", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("store_id", "key"),
    )


def downgrade() -> None:
    op.drop_table("activities")
    op.drop_table("documents")
