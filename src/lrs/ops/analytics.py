"""Analytics maintenance: recomputing a store's rollups from its statements."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from lrs.analytics import writes as analytics_writes
from lrs.config import Settings, store_settings
from lrs.ops.stores import store_named
from lrs.store import audit
from lrs.store.database import Database


async def rebuild(db: Database, settings: Settings, actor: str, store: str) -> int:
    """Recompute every rollup of ``store`` (after its verb sets change); returns how many
    statements were counted. One transaction: readers see the old figures until it commits."""

    async def work(conn: AsyncConnection) -> int:
        found = await store_named(conn, store)
        own = store_settings(found.settings)
        count = await analytics_writes.rebuild(conn, found.id, own, own.zone(settings.default_timezone))
        await audit.record(conn, actor, "analytics.rebuild", store, None, {"statements": count})
        return count

    return await db.write(work)
