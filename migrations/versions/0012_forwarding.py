"""Forwarding rules, their outbox and dead letters; sources to pull from.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "forward_rules",
        sa.Column("id", sa.BigInteger, sa.Identity(always=False), primary_key=True),
        sa.Column("store_id", sa.BigInteger, sa.ForeignKey("stores.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("endpoint", sa.Text, nullable=False),
        sa.Column("version", sa.Text, nullable=False),
        sa.Column("credentials", sa.LargeBinary, nullable=False),
        sa.Column("filter", JSONB, nullable=False),
        sa.Column("pseudonym_secret", sa.LargeBinary),
        sa.Column("pseudonym_home_page", sa.Text),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.text("true")),
        sa.Column("batch_size", sa.Integer, nullable=False),
        sa.Column("max_attempts", sa.Integer, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("next_attempt", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("last_error", sa.Text),
        sa.Column("sent", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("failed", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("dead", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("store_id", "name", name="forward_rules_store_id_name_key"),
    )
    op.create_table(
        "forward_outbox",
        sa.Column(
            "rule_id", sa.BigInteger, sa.ForeignKey("forward_rules.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("rule_id", "seq"),
    )
    op.create_table(
        "forward_dead",
        sa.Column("id", sa.BigInteger, sa.Identity(always=False), primary_key=True),
        sa.Column(
            "rule_id", sa.BigInteger, sa.ForeignKey("forward_rules.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("seqs", sa.ARRAY(sa.BigInteger), nullable=False),
        sa.Column("error", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("forward_dead_rule", "forward_dead", ["rule_id"])
    op.create_table(
        "pull_sources",
        sa.Column("id", sa.BigInteger, sa.Identity(always=False), primary_key=True),
        sa.Column("store_id", sa.BigInteger, sa.ForeignKey("stores.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("endpoint", sa.Text, nullable=False),
        sa.Column("version", sa.Text, nullable=False),
        sa.Column("credentials", sa.LargeBinary, nullable=False),
        sa.Column("checkpoint", sa.DateTime(timezone=True)),
        sa.Column("every_seconds", sa.Integer),
        sa.Column("last_run", sa.DateTime(timezone=True)),
        sa.Column("last_error", sa.Text),
        sa.Column("pulled", sa.BigInteger, nullable=False, server_default=sa.text("0")),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("store_id", "name", name="pull_sources_store_id_name_key"),
    )


def downgrade() -> None:
    op.drop_table("pull_sources")
    op.drop_table("forward_dead")
    op.drop_table("forward_outbox")
    op.drop_table("forward_rules")
