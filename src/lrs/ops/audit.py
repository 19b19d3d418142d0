"""The audit trail, newest first."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from lrs.ops.caller import Caller
from lrs.store import audit
from lrs.store import stores as store_store
from lrs.store.audit import Entry
from lrs.store.database import Database


async def record(
    conn: AsyncConnection, who: Caller, action: str, target: str, details: dict[str, Any]
) -> None:
    """Record a change a store's own credential made (in the transaction making it)."""
    store = await store_store.get(conn, who.store_id)
    await audit.record(conn, who.key, action, store.name if store else None, target, details)


async def read(
    db: Database, limit: int = 100, before: int | None = None, store: str | None = None
) -> list[Entry]:
    return await db.read(lambda conn: audit.read(conn, limit, before, store))
