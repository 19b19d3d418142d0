"""The audit trail, newest first."""

from __future__ import annotations

from lrs.store import audit
from lrs.store.audit import Entry
from lrs.store.database import Database


async def read(
    db: Database, limit: int = 100, before: int | None = None, store: str | None = None
) -> list[Entry]:
    return await db.read(lambda conn: audit.read(conn, limit, before, store))
