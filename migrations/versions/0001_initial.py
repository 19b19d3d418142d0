"""Stores, credentials, statements and their filter index.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "instance",
        sa.Column("id", sa.SmallInteger, primary_key=True, autoincrement=False),
        sa.Column("secret", sa.LargeBinary, nullable=False),
        sa.CheckConstraint("id = 1", name="instance_single_row"),
    )
    op.execute(
        sa.text("INSERT INTO instance (id, secret) VALUES (1, :secret)").bindparams(secret=os.urandom(32))
    )
    op.create_table(
        "stores",
        sa.Column("id", sa.BigInteger, sa.Identity(always=False), primary_key=True),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("settings", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
    )
    op.execute("INSERT INTO stores (id, name) OVERRIDING SYSTEM VALUE VALUES (1, 'default')")
    op.execute("SELECT setval(pg_get_serial_sequence('stores', 'id'), 1)")
    op.create_table(
        "credentials",
        sa.Column("store_id", sa.BigInteger, sa.ForeignKey("stores.id", ondelete="CASCADE"), nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("secret_hash", sa.LargeBinary, nullable=False),
        sa.Column("label", sa.Text, nullable=False, server_default=""),
        sa.Column("scopes", sa.ARRAY(sa.Text), nullable=False),
        sa.Column("authority", JSONB, nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("expires", sa.DateTime(timezone=True)),
        sa.Column("revoked", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("store_id", "key"),
        sa.UniqueConstraint("key", name="credentials_key_key"),
    )
    op.execute("CREATE SEQUENCE statement_seq")
    op.create_table(
        "statements",
        sa.Column("store_id", sa.BigInteger, sa.ForeignKey("stores.id", ondelete="CASCADE"), nullable=False),
        sa.Column(
            "seq", sa.BigInteger, nullable=False, server_default=sa.text("nextval('statement_seq'::regclass)")
        ),
        sa.Column("id", UUID(as_uuid=True), nullable=False),
        sa.Column("stored", sa.DateTime(timezone=True), nullable=False),
        sa.Column("timestamp", sa.DateTime(timezone=True), nullable=False),
        sa.Column("verb_id", sa.Text, nullable=False),
        sa.Column("voided", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column("voids", UUID(as_uuid=True)),
        sa.Column("refers_to", UUID(as_uuid=True)),
        sa.Column("credential", sa.Text, nullable=False),
        sa.Column("statement", JSONB, nullable=False),
        sa.PrimaryKeyConstraint("store_id", "seq"),
        sa.UniqueConstraint("store_id", "id", name="statements_store_id_id_key"),
    )
    op.create_index(
        "statements_voids_idx",
        "statements",
        ["store_id", "voids"],
        postgresql_where=sa.text("voids IS NOT NULL"),
    )
    op.create_index(
        "statements_refers_to_idx",
        "statements",
        ["store_id", "refers_to"],
        postgresql_where=sa.text("refers_to IS NOT NULL"),
    )
    op.create_index("statements_stored_idx", "statements", ["store_id", "stored"])
    op.create_table(
        "statement_index",
        sa.Column("store_id", sa.BigInteger, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("related", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("store_id", "key", "seq", "related"),
    )


def downgrade() -> None:
    op.drop_table("statement_index")
    op.drop_table("statements")
    op.execute("DROP SEQUENCE statement_seq")
    op.drop_table("credentials")
    op.drop_table("stores")
    op.drop_table("instance")
