"""Group commit, without a server: requests combined on purpose, one of them refused.

The write itself is the real one, on a real database; only the timing is arranged: the
first request's write is held until the others have queued behind it, so the next write
combines them every time, not by chance.
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

from lrs.api.auth import Caller
from lrs.api.coalesce import Coalescer
from lrs.api.statements import write_batch
from lrs.config import Settings
from lrs.store import credentials as credential_store
from lrs.store.database import Database
from lrs.xapi.errors import BadRequest
from lrs.xapi.statements import Prepared, prepare
from lrs.xapi.versions import Version
from tests.factories import agent, statement
from tests.harness import make_credential


@pytest.fixture(scope="module")
async def lrs(server) -> AsyncIterator[SimpleNamespace]:
    """What the write needs: the database, the settings and a caller (no HTTP involved)."""
    engine = create_async_engine(server.database_url)
    db = Database(engine)
    key = make_credential(server.database_url, label="coalescer").key

    async def load(conn: Any) -> credential_store.Credential | None:
        return await credential_store.get(conn, key)

    credential = await db.read(load)
    assert credential is not None
    app = SimpleNamespace(state=SimpleNamespace(settings=Settings(database_url=server.database_url), db=db))
    try:
        yield SimpleNamespace(app=app, db=db, who=Caller(credential))
    finally:
        await engine.dispose()


class HeldWrites:
    """The real write, recording each call's size; the first call waits for ``release``."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.sizes: list[int] = []
        self.release = asyncio.Event()

    async def __call__(self, who: Caller, batch: list[Prepared]) -> list[uuid.UUID]:
        self.sizes.append(len(batch))
        if len(self.sizes) == 1:
            await self.release.wait()
        return await write_batch(self.app, who, batch)


def prepared(who: Caller, raw: dict[str, Any]) -> list[Prepared]:
    return [prepare(raw, Version.V2, who.authority, "statement")]


async def rows_matching(db: Database, sql: str, **params: Any) -> int:
    async def count(conn: Any) -> int:
        return int((await conn.execute(text(sql), params)).scalar_one())

    return await db.read(count)


async def test_a_refused_request_in_a_combined_write_leaves_no_trace_in_the_others(lrs):
    who = lrs.who
    writes = HeldWrites(lrs.app)
    coalescer = Coalescer(writes)
    ghost = agent()
    # T cannot be stored (PostgreSQL refuses NUL in text); R refers to T; D is unrelated.
    target = statement(actor=ghost, verb="http://example.no/verbs/\u0000")
    target["id"] = str(uuid.uuid4())
    ref = statement(obj={"objectType": "StatementRef", "id": target["id"]})
    other = statement()

    first = asyncio.ensure_future(coalescer.write(who, prepared(who, statement())))
    while not writes.sizes:  # the first write has started and is held
        await asyncio.sleep(0)
    queued = [asyncio.ensure_future(coalescer.write(who, prepared(who, raw))) for raw in (target, ref, other)]
    await asyncio.sleep(0)
    writes.release.set()
    results = await asyncio.gather(first, *queued, return_exceptions=True)

    # The three queued requests were written together once, then each on its own.
    assert writes.sizes == [1, 3, 1, 1, 1]
    assert isinstance(results[1], BadRequest)
    assert all(isinstance(r, list) for r in (results[0], results[2], results[3]))
    ghost_key = f"a:mbox:{ghost['mbox']}"
    store = who.store_id
    assert (
        await rows_matching(
            lrs.db,
            "SELECT count(*) FROM statements WHERE store_id = :s AND id = :id",
            s=store,
            id=uuid.UUID(target["id"]),
        )
        == 0
    )
    # R's index rows are its own: nothing inherited from the T of the failed combined write.
    assert (
        await rows_matching(
            lrs.db,
            "SELECT count(*) FROM statement_index WHERE store_id = :s AND key = :k",
            s=store,
            k=ghost_key,
        )
        == 0
    )
    ref_seq_rows = await rows_matching(
        lrs.db,
        "SELECT count(*) FROM statement_index i JOIN statements s ON s.store_id = i.store_id"
        " AND s.seq = i.seq WHERE s.store_id = :s AND s.id = :id",
        s=store,
        id=results[2][0],
    )
    assert ref_seq_rows > 0
    # No rollup saw T's learner.
    for table in ("analytics_hourly", "analytics_progress"):
        assert (
            await rows_matching(
                lrs.db,
                f"SELECT count(*) FROM {table} WHERE store_id = :s AND learner_key = :k",
                s=store,
                k=ghost_key[2:],
            )
            == 0
        )


async def test_a_lone_request_is_written_at_once(lrs):
    writes = HeldWrites(lrs.app)
    writes.release.set()
    coalescer = Coalescer(writes)
    [sid] = await coalescer.write(lrs.who, prepared(lrs.who, statement()))
    assert writes.sizes == [1]
    assert await rows_matching(lrs.db, "SELECT count(*) FROM statements WHERE id = :id", id=sid) == 1
