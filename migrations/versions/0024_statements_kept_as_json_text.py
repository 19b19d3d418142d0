"""Statements are kept as json (their text as written) instead of jsonb.

The LRS only ever reads a statement whole: to serve it, export it, forward it or fold it
into the rollups. jsonb made PostgreSQL parse each statement into its binary form as it was
written and print it out again at every read. On 200,000 statements of the benchmark's
generator, COPY into a bare jsonb column took 3.55 s against 1.80 s into json, and reading
their texts back 2.2 s against 0.65 s; a page of 100 statements cost PostgreSQL about
0.9 ms of CPU for the printing alone. (Their size hardly differs: 1,476 bytes a statement
as jsonb, 1,312 as json, and five rows fit a page either way.)

The column's type changes in place: PostgreSQL rewrites the table and its indexes, holding
an exclusive lock on it meanwhile (19.5 s for 1,000,000 statements here; about as long as a
VACUUM FULL of the table). The texts it writes are jsonb's printing of each statement, which
serves the same JSON.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE statements ALTER COLUMN statement TYPE json USING CAST(statement AS text)::json")


def downgrade() -> None:
    op.execute("ALTER TABLE statements ALTER COLUMN statement TYPE jsonb USING CAST(statement AS jsonb)")
