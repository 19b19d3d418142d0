"""Analytics maintenance: folding stored statements into the rollups (the background
worker's job), recomputing a store's rollups, and how far behind the rollups are."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from lrs.analytics import reads as analytics_reads
from lrs.analytics import writes as analytics_writes
from lrs.analytics.reads import Backlog
from lrs.config import Settings, StoreSettings, store_settings
from lrs.ops.stores import store_named
from lrs.store import audit
from lrs.store import stores as store_store
from lrs.store.database import Database

log = logging.getLogger(__name__)

# Statements folded per transaction: large set-based upserts, short enough that a fold
# never holds the rollups' row locks for long. The worker holds two batches at once (one
# written, the next computed), so the batch sets what folding adds to its memory: about
# 65 MB at 2,500, 24 MB at 1,500, 10 to 17 MB at 1,000, at rates within this machine's noise
# of each other (30,000 statements a round, alternating; 5,000 took twice 2,500's memory).
FOLD_STATEMENTS = 1000


async def fold_pending(db: Database, settings: Settings, statements: int = FOLD_STATEMENTS) -> int:
    """Fold the oldest queued statements into the rollups and drop their queue rows, in one
    transaction; returns how many queue rows were folded (0: nothing to do, or another
    process is folding)."""
    return len((await _fold(db, settings, statements, None)).queue_ids)


@dataclass(frozen=True)
class Ahead:
    """A queue batch read and computed before its transaction: its queue row ids, whether
    the queue held more behind it, and each store's part of it."""

    queue_ids: list[int]
    more: bool
    stores: dict[int, analytics_writes.Computed]


@dataclass(frozen=True)
class Folded:
    """What one fold transaction did: the queue rows it folded, whether the queue held more
    behind them, and whether all of it was written from what was computed ahead."""

    queue_ids: list[int]
    more: bool
    used_ahead: bool


class Folder:
    """The worker's fold, batch after batch: while one batch's SQL runs, the next batch is
    read and computed (parsing statements and working out what they add is about half of a
    fold's time, and needs no lock). A batch computed ahead is used only when its transaction
    takes the same queue rows and finds the same statement versions and store settings;
    otherwise it is computed again inside the transaction, as ``fold_pending`` does.

    Only a backlog is computed ahead: once a fold has taken all that was queued, the next
    batch is what arrives meanwhile, and computing it early would mostly be done twice."""

    def __init__(self, db: Database, settings: Settings, statements: int = FOLD_STATEMENTS) -> None:
        self.db = db
        self.settings = settings
        self.statements = statements
        self._next: asyncio.Task[Ahead | None] | None = None
        self.folded_ahead = 0  # batches written from what was computed ahead
        self.caught_up = True  # whether the last fold took all that was queued

    @property
    def ahead_ready(self) -> bool:
        """Whether the next batch has been computed (or found empty)."""
        return self._next is not None and self._next.done()

    async def fold(self) -> int:
        """Fold the next batch; returns how many queue rows were folded."""
        ahead = await self._take_next()
        if ahead is not None and ahead.more:  # the batch after it, computed while its SQL runs
            self._next = asyncio.create_task(self._compute_after(max(ahead.queue_ids)))
        folded = await _fold(self.db, self.settings, self.statements, ahead)
        self.folded_ahead += folded.used_ahead
        self.caught_up = not folded.more
        taken = folded.queue_ids
        if folded.more and (self._next is None or ahead is None or sorted(taken) != sorted(ahead.queue_ids)):
            # It took other rows than the ones computed (a queue row committed late, or
            # the queue grew meanwhile): compute after what it did take.
            await self.close()
            self._next = asyncio.create_task(self._compute_after(max(taken)))
        return len(taken)

    async def close(self) -> None:
        if self._next is not None:
            self._next.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._next
            self._next = None

    async def _take_next(self) -> Ahead | None:
        task, self._next = self._next, None
        if task is None:
            return None
        try:
            return await task
        except Exception:
            log.warning("computing the next rollup batch ahead failed; folding it inline", exc_info=True)
            return None

    async def _compute_after(self, after: int) -> Ahead | None:
        async def read(
            conn: AsyncConnection,
        ) -> tuple[analytics_writes.Batch, dict[int, tuple[analytics_writes.Unparsed, StoreSettings]]]:
            peeked = await analytics_writes.peek(conn, after, self.statements)
            parts = {}
            for store_id, own, items in await _by_store(conn, peeked.rows):
                seqs = [seq for p in items for seq in p.seqs]
                parts[store_id] = (await analytics_writes.read_statements(conn, store_id, seqs), own)
            return peeked, parts

        peeked, parts = await self.db.read(read)
        if not peeked.rows:
            return None
        stores = {
            store_id: await analytics_writes.in_fold_thread(analytics_writes.computed, unparsed, own)
            for store_id, (unparsed, own) in parts.items()
        }
        return Ahead([p.id for p in peeked.rows], peeked.more, stores)


async def _by_store(
    conn: AsyncConnection, rows: list[analytics_writes.Pending]
) -> list[tuple[int, StoreSettings, list[analytics_writes.Pending]]]:
    """Queue rows by store, in queue order, with each store's settings; a store deleted
    meanwhile is left out (its queue rows went with it)."""
    out = []
    for store_id, group in itertools.groupby(
        sorted(rows, key=lambda p: (p.store_id, p.id)), lambda p: p.store_id
    ):
        found = await store_store.get(conn, store_id)
        if found is not None:
            out.append((store_id, store_settings(found.settings), list(group)))
    return out


async def _fold(db: Database, settings: Settings, statements: int, ahead: Ahead | None) -> Folded:
    """One fold transaction (nothing, when another process holds the fold lock)."""

    async def work(conn: AsyncConnection) -> Folded:
        if not await analytics_writes.take_fold_lock(conn, wait=False):
            return Folded([], more=False, used_ahead=False)
        batch = await analytics_writes.pending(conn, statements)
        taken = batch.rows
        # Gone from the queue first: what voiding rebuilds below counts these statements as
        # folded, and leaves out only the ones still queued behind them.
        await analytics_writes.done(conn, taken)
        # What was computed ahead serves only the queue rows it was computed for.
        same_rows = ahead is not None and sorted(p.id for p in taken) == sorted(ahead.queue_ids)
        computed_ahead = ahead.stores if same_rows and ahead is not None else {}
        used = same_rows
        for store_id, own, items in await _by_store(conn, taken):
            done_ahead = await analytics_writes.fold(
                conn,
                store_id,
                [seq for p in items for seq in p.seqs],
                [v for p in items for v in p.voided],
                own,
                own.zone(settings.default_timezone),
                computed_ahead.get(store_id),
            )
            used = used and done_ahead
        return Folded([p.id for p in taken], batch.more, used)

    return await db.write(work)


async def backlog(db: Database) -> Backlog:
    """What is still to fold, installation-wide (for /metrics and readiness)."""
    return await db.read(analytics_reads.backlog)


async def rebuild(
    db: Database,
    settings: Settings,
    actor: str,
    store: str,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Recompute every rollup of ``store`` (after its verb sets change); returns how many
    statements were counted, and tells ``progress`` the count as it goes. One transaction:
    readers see the old figures until it commits."""

    async def work(conn: AsyncConnection) -> int:
        found = await store_named(conn, store)
        own = store_settings(found.settings)
        count = await analytics_writes.rebuild(
            conn, found.id, own, own.zone(settings.default_timezone), progress=progress
        )
        await audit.record(conn, actor, "analytics.rebuild", store, None, {"statements": count})
        return count

    return await db.write(work, repeatable_read=True, after_lock=analytics_writes.FOLD_LOCK)
