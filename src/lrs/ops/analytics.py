"""Analytics maintenance: folding stored statements into the rollups (the background
worker's job), recomputing a store's rollups, and how far behind the rollups are."""

from __future__ import annotations

import itertools

from sqlalchemy.ext.asyncio import AsyncConnection

from lrs.analytics import reads as analytics_reads
from lrs.analytics import writes as analytics_writes
from lrs.analytics.reads import Backlog
from lrs.config import Settings, store_settings
from lrs.ops.stores import store_named
from lrs.store import audit
from lrs.store import stores as store_store
from lrs.store.database import Database

# Statements folded per transaction: large set-based upserts, short enough that a fold
# never holds the rollups' row locks for long.
FOLD_STATEMENTS = 5000


async def fold_pending(db: Database, settings: Settings, statements: int = FOLD_STATEMENTS) -> int:
    """Fold the oldest queued statements into the rollups and drop their queue rows, in one
    transaction; returns how many queue rows were folded (0: nothing to do, or another
    process is folding)."""

    async def work(conn: AsyncConnection) -> int:
        if not await analytics_writes.take_fold_lock(conn, wait=False):
            return 0
        taken = await analytics_writes.pending(conn, statements)
        # Gone from the queue first: what voiding rebuilds below counts these statements as
        # folded, and leaves out only the ones still queued behind them.
        await analytics_writes.done(conn, taken)
        for store_id, rows in itertools.groupby(
            sorted(taken, key=lambda p: (p.store_id, p.id)), lambda p: p.store_id
        ):
            found = await store_store.get(conn, store_id)
            if found is None:
                continue  # deleted meanwhile; its queue rows went with it
            own = store_settings(found.settings)
            items = list(rows)
            await analytics_writes.fold(
                conn,
                store_id,
                [seq for p in items for seq in p.seqs],
                [v for p in items for v in p.voided],
                own,
                own.zone(settings.default_timezone),
            )
        return len(taken)

    return await db.write(work)


async def backlog(db: Database) -> Backlog:
    """What is still to fold, installation-wide (for /metrics and readiness)."""
    return await db.read(analytics_reads.backlog)


async def rebuild(db: Database, settings: Settings, actor: str, store: str) -> int:
    """Recompute every rollup of ``store`` (after its verb sets change); returns how many
    statements were counted. One transaction: readers see the old figures until it commits."""

    async def work(conn: AsyncConnection) -> int:
        found = await store_named(conn, store)
        own = store_settings(found.settings)
        count = await analytics_writes.rebuild(conn, found.id, own, own.zone(settings.default_timezone))
        await audit.record(conn, actor, "analytics.rebuild", store, None, {"statements": count})
        return count

    return await db.write(work, repeatable_read=True, after_lock=analytics_writes.FOLD_LOCK)
