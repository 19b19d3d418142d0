"""Group commit, without a server: requests combined on purpose, one of them refused, order
kept, and the queue drained at shutdown.

The write is the real one (``ops.statements.write``) on a real database; only the timing is
arranged: the first request's write is held until the others have queued behind it, so the
next write combines them every time, not by chance.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from lrs.config import Settings
from lrs.ops import credentials as credential_ops
from lrs.ops import statements as statement_ops
from lrs.ops.caller import Caller
from lrs.ops.coalesce import Coalescer
from lrs.store.database import Database
from lrs.store.keys import analytics_key, index_key
from lrs.xapi.errors import BadRequest, Unavailable
from lrs.xapi.statements import Prepared, prepare
from lrs.xapi.versions import Version
from tests.factories import agent, statement
from tests.harness import make_credential


@pytest.fixture(scope="module")
async def lrs(server) -> AsyncIterator[SimpleNamespace]:
    """What the write needs: the database, the settings and a caller (no HTTP involved)."""
    engine = create_async_engine(server.database_url)
    db = Database(engine)
    credential = await credential_ops.lookup(db, make_credential(server.database_url, label="coalescer").key)
    assert credential is not None
    try:
        yield SimpleNamespace(
            db=db, settings=Settings(database_url=server.database_url), who=Caller(credential)
        )
    finally:
        await engine.dispose()


class HeldWrites:
    """The real write, recording each call's size; the first call waits for ``release``."""

    def __init__(self, lrs: SimpleNamespace) -> None:
        self.lrs = lrs
        self.sizes: list[int] = []
        self.release = asyncio.Event()

    async def __call__(self, who: Caller, batch: list[Prepared]) -> list[uuid.UUID]:
        self.sizes.append(len(batch))
        if len(self.sizes) == 1:
            await self.release.wait()
        return await statement_ops.write(self.lrs.db, self.lrs.settings, who, batch)

    async def started(self) -> None:
        while not self.sizes:
            await asyncio.sleep(0)


def prepared(who: Caller, raw: dict[str, Any]) -> list[Prepared]:
    return [prepare(raw, Version.V2, who.authority, "statement")]


async def scalar(db: Database, sql: str, **params: Any) -> Any:
    async def one(conn: Any) -> Any:
        return (await conn.execute(text(sql), params)).scalar_one()

    return await db.read(one)


async def held_then_queued(
    coalescer: Coalescer, writes: HeldWrites, who: Caller, bodies: list[dict[str, Any]]
) -> list[Any]:
    """One request written alone and held; ``bodies`` queue behind it; then all finish."""
    first = asyncio.ensure_future(coalescer.write(who, prepared(who, statement())))
    await writes.started()
    queued = [asyncio.ensure_future(coalescer.write(who, prepared(who, b))) for b in bodies]
    await asyncio.sleep(0)
    writes.release.set()
    return await asyncio.gather(first, *queued, return_exceptions=True)


async def test_a_lone_request_is_written_at_once(lrs):
    writes = HeldWrites(lrs)
    writes.release.set()
    [sid] = await Coalescer(writes).write(lrs.who, prepared(lrs.who, statement()))
    assert writes.sizes == [1]
    assert await scalar(lrs.db, "SELECT count(*) FROM statements WHERE id = :id", id=sid) == 1


async def test_queued_requests_are_written_together_in_arrival_order(lrs):
    writes = HeldWrites(lrs)
    bodies = [statement() for _ in range(5)]
    results = await held_then_queued(Coalescer(writes), writes, lrs.who, bodies)
    assert writes.sizes == [1, 5]
    ids = [r[0] for r in results[1:]]
    seqs = [
        await scalar(
            lrs.db, "SELECT seq FROM statements WHERE store_id = :s AND id = :id", s=lrs.who.store_id, id=i
        )
        for i in ids
    ]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5


async def test_a_refused_request_in_a_combined_write_leaves_no_trace_in_the_others(lrs):
    who = lrs.who
    writes = HeldWrites(lrs)
    ghost = agent()
    # T cannot be stored (PostgreSQL refuses NUL in text); R refers to T; D is unrelated.
    target = statement(actor=ghost, verb="http://example.no/verbs/\u0000")
    target["id"] = str(uuid.uuid4())
    ref = statement(obj={"objectType": "StatementRef", "id": target["id"]})
    results = await held_then_queued(Coalescer(writes), writes, who, [target, ref, statement()])

    # The three queued requests were written together once, then each on its own.
    assert writes.sizes == [1, 3, 1, 1, 1]
    assert isinstance(results[1], BadRequest)
    assert all(isinstance(r, list) for r in (results[0], results[2], results[3]))
    store = who.store_id
    count = "SELECT count(*) FROM statements WHERE store_id = :s AND id = :id"
    assert await scalar(lrs.db, count, s=store, id=uuid.UUID(target["id"])) == 0
    # R's index rows are its own: nothing inherited from the T of the failed combined write.
    ghost_key = f"a:mbox:{ghost['mbox']}"
    index = "SELECT count(*) FROM statement_index WHERE store_id = :s AND key = CAST(:k AS uuid)"
    assert await scalar(lrs.db, index, s=store, k=index_key("agent", ghost_key[2:])) == 0
    own_rows = (
        "SELECT count(*) FROM statement_index i JOIN statements s ON s.store_id = i.store_id"
        " AND s.seq = i.seq WHERE s.store_id = :s AND s.id = :id"
    )
    assert await scalar(lrs.db, own_rows, s=store, id=results[2][0]) > 0
    # No rollup saw T's learner.
    for table in ("analytics_hourly", "analytics_progress"):
        sql = f"SELECT count(*) FROM {table} WHERE store_id = :s AND learner_key = :k"
        assert await scalar(lrs.db, sql, s=store, k=analytics_key(ghost_key[2:])) == 0


async def test_close_drains_what_is_queued_and_refuses_what_comes_after(lrs):
    writes = HeldWrites(lrs)
    coalescer = Coalescer(writes)
    first = asyncio.ensure_future(coalescer.write(lrs.who, prepared(lrs.who, statement())))
    await writes.started()
    queued = [
        asyncio.ensure_future(coalescer.write(lrs.who, prepared(lrs.who, statement()))) for _ in range(3)
    ]
    await asyncio.sleep(0)
    closing = asyncio.ensure_future(coalescer.close())
    await asyncio.sleep(0)
    assert not closing.done()  # the held write is still in flight
    with pytest.raises(Unavailable):
        await coalescer.write(lrs.who, prepared(lrs.who, statement()))
    writes.release.set()
    await closing
    assert all(f.done() and not f.exception() for f in (first, *queued))
    for f in queued:
        [sid] = f.result()
        assert await scalar(lrs.db, "SELECT count(*) FROM statements WHERE id = :id", id=sid) == 1
