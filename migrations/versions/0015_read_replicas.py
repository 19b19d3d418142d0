"""Read replicas: each credential's last write position, and the heartbeat replicas read.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "recent_writes",
        sa.Column("writer", sa.Text, primary_key=True),
        sa.Column("lsn", sa.Numeric, nullable=False),
        prefixes=["UNLOGGED"],
    )
    op.create_table(
        "replica_heartbeat",
        sa.Column("id", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("through", sa.DateTime(timezone=True), nullable=False),
        sa.Column("beat", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("id = 1", name="replica_heartbeat_single_row"),
    )


def downgrade() -> None:
    op.drop_table("replica_heartbeat")
    op.drop_table("recent_writes")
