"""The two ways a batch is written: small batches with one INSERT, large ones with COPY.

Both must store the same rows for the same batches, with voiding, StatementRefs, repeats,
conflicts and values PostgreSQL refuses; COPY must also survive a race for the same ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from lrs.config import Settings
from lrs.ops import credentials as credential_ops
from lrs.ops import statements as statement_ops
from lrs.ops import stores as store_ops
from lrs.ops.caller import Caller
from lrs.store import statements as statement_store
from lrs.store.database import Database
from lrs.store.keys import index_key
from lrs.xapi.agents import ifi_key
from lrs.xapi.errors import BadRequest, Conflict, Unauthorized
from lrs.xapi.query import Format
from lrs.xapi.statements import prepare
from lrs.xapi.versions import Version
from tests.factories import activity, agent, statement, voiding
from tests.harness import Server, make_credential, new_store


@contextlib.asynccontextmanager
async def writer(server: Server, store: str) -> AsyncIterator[tuple[Database, Settings, Caller]]:
    key = (await asyncio.to_thread(make_credential, server.database_url, store=store)).key
    engine = create_async_engine(server.database_url, pool_size=4)
    try:
        db = Database(engine)
        credential = await credential_ops.lookup(db, key)
        assert credential is not None
        yield db, Settings(database_url=server.database_url), Caller(credential)
    finally:
        await engine.dispose()


def with_id(s: dict[str, Any]) -> dict[str, Any]:
    return {**s, "id": str(uuid.uuid4())}


def ref(target: dict[str, Any]) -> dict[str, Any]:
    return with_id(statement(obj={"objectType": "StatementRef", "id": target["id"]}))


def scenario() -> list[list[dict[str, Any]]]:
    """Batches, in order, touching every rule of the write path."""
    learner = agent()
    t1, t2, t3, t4, t5 = (with_id(statement(actor=learner, obj=activity(f"t{n}"))) for n in range(1, 6))
    filler = [with_id(statement(obj=activity("filler"))) for _ in range(8)]
    return [
        # voided in its own batch; a reference to a statement of the same batch
        [t1, with_id(voiding(t1["id"])), t2, ref(t2), t3, t5, *filler],
        # voiding a stored statement; voiding one not yet stored; a reference to a stored one
        [with_id(voiding(t3["id"])), with_id(voiding(t4["id"])), ref(t5)],
        # the statement whose voiding came first; a repeat of a stored statement
        [t4, t2],
    ]


def authority_keys(authority: dict[str, Any]) -> set[str]:
    return {index_key("agent", k) for k in map(ifi_key, [authority, *authority.get("member", [])]) if k}


async def stored_rows(db: Database, store: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The statements and index rows of a store, without what differs between stores."""

    async def read(conn: Any) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        statements = await conn.execute(
            text(
                "SELECT s.id, s.voided, s.voids, s.refers_to, s.verb_id,"
                " CAST(s.statement AS jsonb) - 'stored' - 'timestamp' - 'authority' AS body, s.seq"
                " FROM statements s"
                " JOIN stores t ON t.id = s.store_id WHERE t.name = :store ORDER BY s.seq"
            ),
            {"store": store},
        )
        index = await conn.execute(
            text(
                "SELECT s.id, replace(CAST(i.key AS text), '-', '') AS key, i.related,"
                " s.statement -> 'authority' AS authority FROM statement_index i"
                " JOIN statements s ON s.store_id = i.store_id AND s.seq = i.seq"
                " JOIN stores t ON t.id = s.store_id WHERE t.name = :store"
            ),
            {"store": store},
        )
        # The authority (each store's own credential) is indexed too; it differs by design.
        own = sorted((r.id, r.key, r.related) for r in index if r.key not in authority_keys(r.authority))
        return [tuple(r[:-1]) for r in statements], own

    return await db.read(read)


async def write_all(server: Server, store: str, batches: list[list[dict[str, Any]]]) -> None:
    async with writer(server, store) as (db, settings, who):
        for batch in batches:
            prepared = [prepare(s, Version.V2, who.authority, "statement") for s in batch]
            await statement_ops.write(db, settings, who, prepared)


async def test_copy_and_insert_store_the_same_rows(server, monkeypatch):
    batches = scenario()
    stores = {}
    for path, threshold in (("insert", 10**6), ("copy", 1)):
        monkeypatch.setattr(statement_store, "COPY_FROM", threshold)
        stores[path] = await asyncio.to_thread(new_store, server.database_url, path)
        await write_all(server, stores[path], batches)

    async with writer(server, stores["copy"]) as (db, _, _who):
        copied, copied_index = await stored_rows(db, stores["copy"])
        inserted, inserted_index = await stored_rows(db, stores["insert"])
    assert copied == inserted
    assert copied_index == inserted_index

    t1, _v1, t2, r1, t3, t5 = batches[0][:6]
    v3, v4, r2 = batches[1]
    t4 = batches[2][0]
    by_id = {str(row[0]): row for row in copied}
    assert [str(row[0]) for row in copied] == [s["id"] for s in batches[0] + batches[1] + [t4]]
    assert {i for i, row in by_id.items() if row[1]} == {t1["id"], t3["id"], t4["id"]}
    assert str(by_id[v3["id"]][2]) == t3["id"] and str(by_id[v4["id"]][2]) == t4["id"]
    keys = {}
    for statement_id, key, related in copied_index:
        keys.setdefault(str(statement_id), set()).add((key, related))
    # A reference matches what its target matches, as a related activity at least.
    for reference, target in ((r1, t2), (r2, t5)):
        assert index_key("activity", target["object"]["id"]) in {k for k, _ in keys[reference["id"]]}


@pytest.mark.parametrize("threshold", [1, 10**6], ids=["copy", "insert"])
async def test_a_conflict_or_a_refused_value_stores_nothing_of_the_batch(server, monkeypatch, threshold):
    monkeypatch.setattr(statement_store, "COPY_FROM", threshold)
    store = await asyncio.to_thread(new_store, server.database_url, "refused")
    first = with_id(statement())
    await write_all(server, store, [[first]])
    changed = {**first, "verb": {"id": "http://adlnet.gov/expapi/verbs/passed"}}
    others = [with_id(statement()) for _ in range(3)]
    with pytest.raises(Conflict, match=first["id"]):
        await write_all(server, store, [[*others, changed]])
    nul = with_id(statement(result={"response": "a\u0000b"}))
    with pytest.raises(BadRequest, match="cannot be stored"):
        await write_all(server, store, [[*others, nul]])
    async with writer(server, store) as (db, _, _who):
        rows, _index = await stored_rows(db, store)
    assert [str(r[0]) for r in rows] == [first["id"]]


@pytest.mark.parametrize("threshold", [1, 10_000])  # COPY; INSERT
async def test_a_backslash_before_u0000_is_text_not_a_nul(server, monkeypatch, threshold):
    """Only the NUL character is refused: the six characters \\u0000 (a backslash escaped in
    the JSON) are stored and served as they came, in keys too."""
    monkeypatch.setattr(statement_store, "COPY_FROM", threshold)
    store = await asyncio.to_thread(new_store, server.database_url, "backslash")
    looks_like = "C:\\u0000\\\\u0000"
    kept = with_id(
        statement(result={"response": looks_like, "extensions": {"https://x.no/e": {"\\u0000": 1}}})
    )
    await write_all(server, store, [[kept]])
    async with writer(server, store) as (db, _, who):
        found = await statement_ops.get_one(
            db, who, uuid.UUID(kept["id"]), voided=False, fmt=Format.EXACT, languages=[]
        )
    assert found.found is not None
    served = json.loads(found.found.statement)
    assert served["result"] == kept["result"]


async def test_copies_racing_for_the_same_ids_store_each_statement_once(server, monkeypatch, caplog):
    """Writers that all found the ids free: the later COPYs fail on the unique key, and their
    transactions run again, finding the statements stored."""
    monkeypatch.setattr(statement_store, "COPY_FROM", 1)
    store = await asyncio.to_thread(new_store, server.database_url, "race")
    async with writer(server, store) as (db, settings, who):
        for _ in range(5):
            batch = [with_id(statement()) for _ in range(50)]
            prepared = [prepare(s, Version.V2, who.authority, "statement") for s in batch]
            results = await asyncio.gather(
                *(statement_ops.write(db, settings, who, prepared) for _ in range(3))
            )
            assert all(ids == [p.id for p in prepared] for ids in results)
            different = {**batch[0], "verb": {"id": "http://adlnet.gov/expapi/verbs/passed"}}
            late = [prepare(different, Version.V2, who.authority, "statement")]
            with pytest.raises(Conflict):
                await statement_ops.write(db, settings, who, late)
        rows, _index = await stored_rows(db, store)
    assert len(rows) == 250
    assert "retried after a lost race" in caplog.text


async def test_a_store_deleted_while_a_batch_is_written_keeps_none_of_it(server):
    """Statements carry no foreign key to their store: the lock a write takes on the store's
    row is what makes the store's deletion wait for a batch under way and then delete that
    batch too, and what makes a later write into the deleted store fail, storing nothing."""
    store = await asyncio.to_thread(new_store, server.database_url, "doomed")
    async with writer(server, store) as (db, settings, who):
        # Without rollups the batch writes no row that has a foreign key to the store.
        settings = settings.model_copy(update={"analytics_rollups": False})
        batch = [prepare(with_id(statement()), Version.V2, who.authority, "statement") for _ in range(60)]
        inside, release = asyncio.Event(), asyncio.Event()

        async def hold() -> None:
            inside.set()
            await release.wait()

        writing = asyncio.create_task(statement_ops.write(db, settings, who, batch, before_commit=hold))
        await inside.wait()  # the batch is written, not committed
        deleting = asyncio.create_task(store_ops.delete(db, "test", store))

        async def waiting_on_a_lock(conn: Any) -> int:
            found = await conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND query LIKE '%FROM stores WHERE id = $1 FOR UPDATE%'"
                )
            )
            return int(found.scalar_one())

        for _ in range(200):
            if await db.read(waiting_on_a_lock):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the deletion did not wait for the batch being written")
        assert not deleting.done()
        release.set()
        assert await writing == [p.id for p in batch]
        await deleting

        async def left(conn: Any) -> list[int]:
            return [
                (
                    await conn.execute(
                        text(f"SELECT count(*) FROM {table} WHERE store_id = :s"), {"s": who.store_id}
                    )
                ).scalar_one()
                for table in ("statements", "statement_index")
            ]

        assert await db.read(left) == [0, 0]
        late = [prepare(with_id(statement()), Version.V2, who.authority, "statement")]
        with pytest.raises(Unauthorized, match="store was deleted"):
            await statement_ops.write(db, settings, who, late)
        assert await db.read(left) == [0, 0]
