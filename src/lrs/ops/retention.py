"""Retention: statements older than a store's retention period are deleted, once a day, by
the elected background worker (or at once, by an admin).

A run fixes its cutoff (``retention_months`` before it starts) and deletes the statements
stored before it in batches, oldest first, each batch one transaction: the statements and
their index rows, their place in forwarding outboxes, the attachments no statement left
declares, and their part of the analytics figures (the rollups are recounted without them:
figures for deleted periods are removed, not kept). Documents are not statements and stay.
An interrupted run leaves whole batches done and the rest for the next run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from lrs.analytics import writes as analytics_writes
from lrs.config import Settings, store_settings
from lrs.ops import removal
from lrs.ops.stores import store_named
from lrs.store import attachments as attachment_store
from lrs.store import audit
from lrs.store import retention as retention_store
from lrs.store import statements as statement_store
from lrs.store import stores as store_store
from lrs.store.database import Database
from lrs.xapi.errors import Conflict
from lrs.xapi.timestamps import format_timestamp

# Statements per transaction: each batch holds the fold lock while it recounts rollups.
BATCH = 2000
# The worker runs retention for a store at most this often.
EVERY_SECONDS = 24 * 3600
WORKER = "retention"  # the actor the worker's runs are recorded under


@dataclass(frozen=True)
class Outcome:
    """What a run deleted (or, in a dry run, would delete)."""

    store: str
    dry_run: bool
    months: int
    cutoff: datetime
    statements: int
    attachments: int
    oldest: datetime | None  # the oldest statement's `stored` (dry run)

    def as_dict(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "dry_run": self.dry_run,
            "retention_months": self.months,
            "cutoff": format_timestamp(self.cutoff),
            "statements": self.statements,
            "attachments": self.attachments,
            "oldest": format_timestamp(self.oldest) if self.oldest else None,
        }


async def run(
    db: Database,
    settings: Settings,
    actor: str,
    store: str,
    *,
    dry_run: bool = False,
    batch: int = BATCH,
    at: datetime | None = None,
) -> Outcome:
    """Delete the store's statements stored before its retention cutoff, ``retention_months``
    before now (or ``at``); ``dry_run``: only count them. 409 when the store has no period."""

    async def begin(conn: AsyncConnection) -> tuple[int, str, int, datetime, int, datetime | None]:
        target = await store_named(conn, store)
        months = store_settings(target.settings).retention_months
        if months is None:
            raise Conflict(f"store {target.name!r} keeps statements for ever: set retention_months first")
        cutoff = await retention_store.cutoff(conn, months, at)
        count, oldest = await statement_store.count_stored_before(conn, target.id, cutoff)
        return target.id, target.name, months, cutoff, count, oldest

    store_id, name, months, cutoff, count, oldest = await db.read(begin)
    if dry_run:
        return Outcome(name, True, months, cutoff, count, 0, oldest)
    deleted = attachments = 0
    while True:
        gone, orphans = await db.write(
            lambda conn: _batch(conn, settings, store_id, cutoff, batch),
            repeatable_read=True,
            after_lock=analytics_writes.FOLD_LOCK,
        )
        deleted += gone
        attachments += orphans
        if gone < batch:
            break
    outcome = Outcome(name, False, months, cutoff, deleted, attachments, None)

    async def note(conn: AsyncConnection) -> None:
        await retention_store.ran(conn, store_id, deleted)
        await audit.record(conn, actor, "retention.run", name, None, outcome.as_dict())

    await db.write(note)
    return outcome


async def _batch(
    conn: AsyncConnection, settings: Settings, store_id: int, cutoff: datetime, limit: int
) -> tuple[int, int]:
    found = await store_store.get(conn, store_id)
    if found is None:
        return 0, 0
    own = store_settings(found.settings)
    held = await statement_store.stored_before(conn, store_id, cutoff, limit)
    orphans = await removal.orphaned(conn, store_id, held)
    gone = await removal.delete(conn, store_id, held)
    await attachment_store.delete(conn, store_id, orphans)
    counted = [h.statement for h in held if not h.voided]
    await analytics_writes.take_out(conn, store_id, counted, own, own.zone(settings.default_timezone))
    return gone, len(orphans)


async def run_due(db: Database, settings: Settings) -> int:
    """Retention for every store with a period whose last run is a day old (the worker's
    job); returns how many statements went."""

    async def stores(conn: AsyncConnection) -> list[tuple[int, str]]:
        kept = [s for s in await store_store.list_all(conn) if store_settings(s.settings).retention_months]
        due = set(await retention_store.due(conn, [s.id for s in kept], EVERY_SECONDS))
        return [(s.id, s.name) for s in kept if s.id in due]

    deleted = 0
    for _, name in await db.read(stores):
        deleted += (await run(db, settings, WORKER, name)).statements
    return deleted


@dataclass(frozen=True)
class Status:
    """A store's retention as /metrics shows it."""

    store: str
    months: int
    last_run: datetime | None
    deleted: int  # at the last run
    overdue_seconds: float  # how long the oldest statement has been past the cutoff (0: none)


async def status(db: Database) -> list[Status]:
    async def work(conn: AsyncConnection) -> list[Status]:
        out = []
        for s in await store_store.list_all(conn):
            months = store_settings(s.settings).retention_months
            if months is None:
                continue
            cutoff = await retention_store.cutoff(conn, months)
            oldest = await statement_store.oldest_stored(conn, s.id)
            last = await retention_store.last_run(conn, s.id)
            overdue = max((cutoff - oldest).total_seconds(), 0.0) if oldest else 0.0
            out.append(Status(s.name, months, last[0] if last else None, last[1] if last else 0, overdue))
        return out

    return await db.read(work)
