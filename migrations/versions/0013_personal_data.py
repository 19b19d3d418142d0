"""Personal data: each store's pseudonym secret, and when retention last ran per store.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# 32 random bytes from two random UUIDs (244 random bits), without the pgcrypto extension.
RANDOM_SECRET = "decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex')"


def upgrade() -> None:
    op.add_column(
        "stores",
        sa.Column("pseudonym_secret", sa.LargeBinary, nullable=False, server_default=sa.text(RANDOM_SECRET)),
    )
    op.create_table(
        "retention_runs",
        sa.Column(
            "store_id", sa.BigInteger, sa.ForeignKey("stores.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("last_run", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("retention_runs")
    op.drop_column("stores", "pseudonym_secret")
