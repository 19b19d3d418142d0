"""The statement index keyed by 16 bytes instead of text.

Each row's text key (``a:mailto:...``, ``i:https://...``, ``r:<uuid>``) becomes a ``uuid``:
a registration is its own UUID, any other key the first 16 bytes of the SHA-256 of its
text, as ``store.keys.index_key`` computes them. The table is written anew and its primary
key built once, after the rows are in: 3.9 s for 1,400,000 rows (200,000 statements) on the
benchmark machine, the command's start included. Writes wait for it; reads of statements
by a filter too.

The downgrade gives the rows their text back from the statements: every key a stored
statement is indexed under is computed again, with the code's ``index_of``. A row whose
key no stored statement gives (one a StatementRef inherited from a statement removed
since) cannot be named any more and is dropped.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-05
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def _hashed(column: str) -> str:
    """The 16-byte key of the text key in ``column``, in SQL."""
    return (
        f"CASE WHEN left({column}, 2) = 'r:' THEN CAST(substr({column}, 3) AS uuid)"
        f" ELSE CAST(encode(substr(sha256(convert_to({column}, 'UTF8')), 1, 16), 'hex') AS uuid) END"
    )


_PREFIXES = {"agent": "a:", "activity": "i:", "verb": "v:", "registration": "r:"}
_CHUNK = 10_000


def _swap(key_type: Any, fill: str) -> None:
    """Replace statement_index by a table whose key is ``key_type``, filled by ``fill``
    (which reads the old rows as ``statement_index_old``)."""
    op.execute("ALTER TABLE statement_index RENAME TO statement_index_old")
    op.execute("ALTER INDEX statement_index_pkey RENAME TO statement_index_old_pkey")
    op.create_table(
        "statement_index",
        sa.Column("store_id", sa.BigInteger, nullable=False),
        sa.Column("key", key_type, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("related", sa.Boolean, nullable=False),
    )
    op.execute(fill)
    op.drop_table("statement_index_old")
    op.create_primary_key("statement_index_pkey", "statement_index", ["store_id", "key", "seq", "related"])


def upgrade() -> None:
    _swap(
        UUID(as_uuid=False),
        f"INSERT INTO statement_index SELECT store_id, {_hashed('key')}, seq, related"
        " FROM statement_index_old",
    )


def _text_key(kind: str, value: str) -> str:
    key = _PREFIXES[kind] + value
    if len(key.encode()) > 512:
        return _PREFIXES[kind] + "#" + hashlib.sha256(value.encode()).hexdigest()
    return key


def downgrade() -> None:
    from lrs.xapi.statements import index_of

    conn = op.get_bind()
    conn.execute(sa.text("CREATE TEMPORARY TABLE key_texts (key uuid PRIMARY KEY, text text NOT NULL)"))
    after = 0
    while True:
        rows = conn.execute(
            sa.text(
                "SELECT seq, statement::text AS doc FROM statements WHERE seq > :after ORDER BY seq LIMIT :n"
            ),
            {"after": after, "n": _CHUNK},
        ).all()
        if not rows:
            break
        after = rows[-1].seq
        texts = {_text_key(*found) for row in rows for found in index_of(orjson.loads(row.doc))}
        conn.execute(
            sa.text(
                f"INSERT INTO key_texts SELECT {_hashed('t')}, t"
                " FROM unnest(CAST(:texts AS text[])) AS u(t) ON CONFLICT DO NOTHING"
            ),
            {"texts": sorted(texts)},
        )
    _swap(
        sa.Text,
        "INSERT INTO statement_index SELECT o.store_id, k.text, o.seq, o.related"
        " FROM statement_index_old o JOIN key_texts k ON k.key = o.key",
    )
    conn.execute(sa.text("DROP TABLE key_texts"))
