"""Regions: named groups of stores that share aggregate figures; region credentials.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "regions",
        sa.Column("id", sa.BigInteger, sa.Identity(always=False), primary_key=True),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        sa.Column("min_group_size", sa.Integer, nullable=False, server_default=sa.text("5")),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("min_group_size >= 1", name="regions_min_group_size_check"),
    )
    op.create_table(
        "region_members",
        sa.Column(
            "region_id", sa.BigInteger, sa.ForeignKey("regions.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("store_id", sa.BigInteger, sa.ForeignKey("stores.id", ondelete="CASCADE"), nullable=False),
        sa.Column("joined", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("region_id", "store_id"),
    )
    op.add_column(
        "credentials",
        sa.Column("region_id", sa.BigInteger, sa.ForeignKey("regions.id", ondelete="CASCADE")),
    )


def downgrade() -> None:
    op.drop_column("credentials", "region_id")
    op.drop_table("region_members")
    op.drop_table("regions")
