"""Dashboard sign-ins (sessions held by an HttpOnly cookie, ended by signing out).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dashboard_sessions",
        sa.Column("token_hash", sa.LargeBinary, primary_key=True),
        sa.Column(
            "credential_key", sa.Text, sa.ForeignKey("credentials.key", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("csrf", sa.Text, nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("expires", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("dashboard_sessions_expires", "dashboard_sessions", ["expires"])


def downgrade() -> None:
    op.drop_table("dashboard_sessions")
