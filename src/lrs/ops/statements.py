"""Statements: the write path (one transaction: statements, index, definitions, attachments,
rollups), single reads, queries, and attachment content for multipart answers."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import IO, Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from lrs.analytics import writes as analytics_writes
from lrs.config import Settings
from lrs.observability import BATCH, STATEMENTS
from lrs.ops import forwarding
from lrs.ops.caller import Caller
from lrs.scopes import DEFINE
from lrs.store import activities as activity_store
from lrs.store import attachments as attachment_store
from lrs.store import statements as statement_store
from lrs.store.attachments import Stored
from lrs.store.database import Database
from lrs.store.statements import Found, Page
from lrs.xapi.attachments import declared
from lrs.xapi.formats import activity_ids, render
from lrs.xapi.query import Format, StatementQuery
from lrs.xapi.statements import Prepared


@dataclass(frozen=True)
class Content:
    """Attachment bytes sent with statements, already checked against their declaration."""

    sha2: str
    content_type: str
    length: int
    file: IO[bytes]


async def write(
    db: Database,
    settings: Settings,
    who: Caller,
    batch: list[Prepared],
    contents: Sequence[Content] = (),
    *,
    seqs: Sequence[int] | None = None,
    before_commit: Callable[[], Awaitable[None]] | None = None,
) -> list[uuid.UUID]:
    """Store a validated batch in one transaction, committed before this returns; all of it
    or (by raising) none. The statements are queued for the analytics worker in the same
    transaction (or, for a store that asks for it, folded into the rollups right there).

    ``seqs``: reserved for the batch (``statement_store.reserve_seqs``). ``before_commit`` is
    awaited last in the transaction; raising there rolls the batch back (an import commits
    its batches in the file's order)."""
    define = who.has(DEFINE)
    declared_types: dict[str, str] = {}  # read only when attachment bytes came with the batch
    if contents:
        declared_types = {a["sha2"].lower(): a["contentType"] for p in batch for a in declared(p.statement)}
    store_settings = who.settings
    zone = store_settings.zone(settings.default_timezone)
    counted: list[int] = []  # per attempt; only the committed (last) one counts

    async def work(conn: AsyncConnection) -> list[uuid.UUID]:
        ids = await store(conn)
        if before_commit is not None:
            await before_commit()
        return ids

    async def store(conn: AsyncConnection) -> list[uuid.UUID]:
        written = await statement_store.insert(conn, who.store_id, who.key, batch, seqs)
        counted.append(len(written.counted))
        await forwarding.enqueue(conn, who.store_id, who.key, written.inserted)
        if define:
            definitions = [d for p in batch for d in p.definitions]
            await activity_store.merge(conn, who.store_id, definitions)
        for content in contents:
            await attachment_store.save(
                conn,
                who.store_id,
                who.key,
                content.sha2,
                declared_types.get(content.sha2, content.content_type),
                content.length,
                content.file,
            )
        if not settings.analytics_rollups:
            return written.ids
        if store_settings.rollups_in_transaction:
            # Per-activity and per-period rollup rows are shared by concurrent batches, so the
            # row locks on them are taken last, as close to the commit as possible.
            statements = [p.statement for p in written.counted]
            await analytics_writes.add(conn, who.store_id, statements, store_settings, zone)
            await analytics_writes.recompute_voided(conn, who.store_id, written.voided, store_settings, zone)
        else:
            # The worker folds them soon after the commit, off the request path.
            await analytics_writes.enqueue(
                conn, who.store_id, written.counted_seqs, written.voided, written.stored
            )
        return written.ids

    ids = await db.write(work, writer=who.key)
    BATCH.observe(len(batch))
    STATEMENTS.inc(counted[-1])
    return ids


@dataclass(frozen=True)
class Single:
    """A statement asked for by id: None when there is none the caller may see."""

    through: datetime
    found: Found | None
    rendered: list[dict[str, Any]]  # in the asked format, when it is not exact


async def get_one(
    db: Database,
    who: Caller,
    statement_id: uuid.UUID,
    *,
    voided: bool,
    fmt: Format,
    languages: list[str],
) -> Single:
    mine = who.key if who.only_own_statements else None

    async def work(conn: AsyncConnection) -> Single:
        through = await statement_store.consistent_through(conn)
        found = await statement_store.get_one(
            conn, who.store_id, statement_id, voided=voided, credential=mine
        )
        docs = [] if found is None else [orjson.loads(found.statement)]
        return Single(through, found, await _rendered(conn, who.store_id, docs, fmt, languages))

    return await db.read(work, reader=who.key, autocommit=True)


@dataclass(frozen=True)
class Result:
    """One page of a query, and the ceiling the next page must keep."""

    through: datetime
    page: Page
    ceiling: int
    replayed: int  # the WAL position the first page was read at
    rendered: list[dict[str, Any]]  # parsed (and rendered) when not exact or with attachments


async def query(db: Database, who: Caller, q: StatementQuery, languages: list[str]) -> Result:
    """A page of statements in keyset order. A first page fixes the ceiling, so that paging
    never shows a statement stored after the query began."""
    mine = who.key if who.only_own_statements else None
    parse_all = q.format is not Format.EXACT or q.attachments
    if who.pseudonym is not None and q.agent is not None:
        # The store holds pseudonyms only; an agent asked for by its own identifier is
        # found under its pseudonym.
        q = replace(q, agent=who.pseudonym.key(q.agent))

    async def work(conn: AsyncConnection) -> Result:
        if q.ceiling is None:
            bounds = await statement_store.first_page_bounds(conn)
            through, ceiling, replayed = bounds.through, bounds.ceiling, bounds.replayed
        else:
            through = await statement_store.consistent_through(conn)
            ceiling, replayed = q.ceiling, q.replayed or 0
        page = await statement_store.query(conn, who.store_id, replace(q, ceiling=ceiling), credential=mine)
        docs = orjson.loads(b"[" + page.listed + b"]") if parse_all else []
        rendered = await _rendered(conn, who.store_id, docs, q.format, languages)
        return Result(through, page, ceiling, replayed, rendered)

    return await db.read(work, reader=who.key, replayed=q.replayed, autocommit=True)


async def consistent_through(db: Database) -> datetime:
    return await db.read(statement_store.consistent_through)


async def attachments(db: Database, who: Caller, hashes: list[str]) -> list[Stored]:
    """The stored attachments among ``hashes`` that the caller may be served. A credential
    that reads only its own statements gets only content it sent itself: its statements
    could declare any hash, another credential's attachment's among them."""
    mine = who.key if who.only_own_statements else None
    return await db.read(lambda conn: attachment_store.find(conn, who.store_id, hashes, mine))


async def _rendered(
    conn: AsyncConnection,
    store_id: int,
    docs: list[dict[str, Any]],
    fmt: Format,
    languages: list[str],
) -> list[dict[str, Any]]:
    """Statements in the asked format; canonical reads the canonical activity definitions."""
    if fmt is Format.EXACT or not docs:
        return docs
    definitions: dict[str, dict[str, Any]] = {}
    if fmt is Format.CANONICAL:
        wanted = set().union(*(activity_ids(d) for d in docs))
        found = await activity_store.get_many(conn, [store_id], wanted)
        definitions = {activity: definition for _, activity, definition in found}
    return [render(d, fmt, languages, definitions) for d in docs]
