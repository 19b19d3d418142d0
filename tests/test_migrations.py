"""The Alembic migrations and ``store/schema.py`` describe the same database."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import httpx
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from lrs.store import migrate
from lrs.store.schema import metadata
from tests.harness import (
    Cred,
    create_database,
    drop_database,
    make_credential,
    own_databases,
    rollups_folded,
    running_server,
)

V2 = {"X-Experience-API-Version": "2.0.0"}
T = TypeVar("T")


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


# Alembic's comparison does not look at generated columns: these are compared here.
_GENERATED = text(
    "SELECT table_name, column_name, generation_expression FROM information_schema.columns"
    " WHERE table_schema = 'public' AND is_generated = 'ALWAYS'"
)


async def test_migrated_database_matches_schema(server):
    engine = create_async_engine(server.database_url)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
            generated = {tuple(r) for r in await conn.execute(_GENERATED)}
        assert generated == {
            (table.name, column.name, str(column.computed.sqltext))
            for table in metadata.tables.values()
            for column in table.columns
            if column.computed is not None
        }
        assert await migrate.is_current(engine)
        await migrate.upgrade(engine)  # running it again changes nothing
        assert await migrate.is_current(engine)
    finally:
        await engine.dispose()


_INDEXES = text(
    "SELECT indexname, indexdef FROM pg_indexes"
    " WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
)


@pytest.fixture
def two_databases() -> Iterator[list[str]]:
    with own_databases(2) as made:
        yield made


async def test_migrated_indexes_are_the_schemas(two_databases):
    """What Alembic's comparison does not see: each index's whole definition (covered
    columns, predicate), as PostgreSQL gives it back, after the migrations and after
    creating ``schema.py``'s tables directly."""
    engines = [create_async_engine(url) for url in two_databases]
    try:
        await migrate.upgrade(engines[0])
        async with engines[1].begin() as conn:
            await conn.run_sync(metadata.create_all)
        found = []
        for engine in engines:
            async with engine.connect() as conn:
                found.append({name: d for name, d in await conn.execute(_INDEXES)})
        migrated, declared = found
        covered = "INCLUDE (statements, completions, completed_at, duration_seconds)"
        assert covered in migrated["analytics_hourly_pkey"]
        assert migrated == declared
    finally:
        for engine in engines:
            await engine.dispose()


def _to(revision: str) -> Callable[[Connection], None]:
    def move(connection: Connection) -> None:
        cfg = migrate.alembic_config()
        cfg.attributes["connection"] = connection
        if revision == "head":
            command.upgrade(cfg, "head")
        else:
            command.downgrade(cfg, revision)

    return move


async def _migrate(engine: AsyncEngine, revision: str) -> None:
    """Move the engine's database to ``revision``, then drop its connections: their prepared
    statements name the types of before."""
    async with engine.begin() as conn:
        await conn.run_sync(_to(revision))
    await engine.dispose()


async def test_upgrading_past_0010_refolds_every_store():
    """0010 adds figures earlier folds did not keep: the rollups are emptied and every
    statement queued again, and the worker's refold gives the figures a fresh fold gives."""
    url, admin = await asyncio.to_thread(create_database)
    try:
        fire = "https://kurs.example.no/oppgradering"
        people = [{"mbox": f"mailto:p{n}@example.no"} for n in range(6)]
        statements = [
            {
                "actor": p,
                "verb": {"id": "http://adlnet.gov/expapi/verbs/completed"},
                "object": {"id": fire},
                "timestamp": "2026-05-04T10:00:00Z",
                "result": {"duration": f"PT{n + 1}M"},
            }
            for n, p in enumerate(people)
        ]
        with running_server(url) as srv:
            cred = make_credential(url, "all,analytics/read")
            async with httpx.AsyncClient(base_url=srv.url, auth=cred.auth, headers=V2) as c:
                assert (await c.post("/xapi/statements", json=statements)).status_code == 200
                await rollups_folded(url)
                before = (await c.get("/analytics/completion", params={"activity": fire})).json()
        engine = create_async_engine(url)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(_to("0009"))
                # What an older fold might have left: figures that no longer hold.
                await conn.execute(text("UPDATE analytics_activity SET learners_completed = 0"))
                await conn.execute(text("DELETE FROM analytics_progress"))
            await _migrate(engine, "head")
            async with engine.connect() as conn:
                # 0022 counts the rows 0010 queued, as a write would.
                counted = "SELECT sum(cardinality(seqs)), sum(statements) FROM rollup_queue"
                queued = (await conn.execute(text(counted))).one()
                assert tuple(queued) == (len(statements), len(statements))
                assert (await conn.execute(text("SELECT count(*) FROM analytics_progress"))).scalar() == 0
        finally:
            await engine.dispose()
        with running_server(url) as srv:
            await rollups_folded(url)
            async with httpx.AsyncClient(base_url=srv.url, auth=cred.auth) as c:
                after = (await c.get("/analytics/completion", params={"activity": fire})).json()
                listed = (await c.get("/analytics/activities")).json()
        before.pop("as_of"), after.pop("as_of")
        assert after == before
        assert after["groups"][0]["learners_completed"] == 6
        assert [(a["activity"], a["learners_completed"]) for a in listed["activities"]] == [(fire, 6)]
    finally:
        await asyncio.to_thread(drop_database, url, admin)


async def _stored(
    url: str, statements: list[dict[str, Any]], read: Callable[[httpx.AsyncClient], Awaitable[T]]
) -> tuple[Cred, T]:
    """Store ``statements`` through a server on ``url``: a credential that may read them, and
    what ``read`` found then."""
    with running_server(url) as srv:
        cred = make_credential(url, "all")
        async with httpx.AsyncClient(base_url=srv.url, auth=cred.auth, headers=V2) as c:
            assert (await c.post("/xapi/statements", json=statements)).status_code == 200
            return cred, await read(c)


async def _read_again(url: str, cred: Cred, read: Callable[[httpx.AsyncClient], Awaitable[T]]) -> T:
    """What ``read`` finds through a server started again on ``url`` (at the newest schema)."""
    with running_server(url) as srv:
        async with httpx.AsyncClient(base_url=srv.url, auth=cred.auth, headers=V2) as c:
            return await read(c)


async def test_the_index_keys_survive_0020_both_ways():
    """0020 turns the index's text keys into 16 bytes in SQL; the code computes the same bytes
    in Python, so every filter finds what it found before, and the downgrade names each row
    again (a long IRI hashed for its size, a non-ASCII one, a registration, a reference)."""
    url, admin = await asyncio.to_thread(create_database)
    long_iri = "https://kurs.example.no/" + "lang/" * 120
    course, unit = "https://kurs.example.no/brannvern", "https://kurs.example.no/øving-ære"
    registration = "6F1C2D3E-4B5A-4C6D-8E7F-0A1B2C3D4E5F"
    kari = {"mbox": "mailto:kari@example.no"}
    first = {
        "id": "0b8f0e1a-1c2d-4e3f-8a9b-0c1d2e3f4a5b",
        "actor": kari,
        "verb": {"id": "http://adlnet.gov/expapi/verbs/completed"},
        "object": {"id": course},
        "context": {"registration": registration, "contextActivities": {"parent": [{"id": long_iri}]}},
    }
    statements = [
        first,
        {"actor": {"mbox": "mailto:per@example.no"}, "verb": {"id": "http://adlnet.gov/expapi/verbs/attempted"},
         "object": {"id": unit}, "context": {"instructor": kari}},
        {"actor": {"mbox": "mailto:ola@example.no"}, "verb": {"id": "http://example.no/verbs/liked"},
         "object": {"objectType": "StatementRef", "id": first["id"]}},
    ]  # fmt: skip
    filters = [
        {"agent": json.dumps(kari)},
        {"agent": json.dumps(kari), "related_agents": "true"},
        {"activity": course},
        {"activity": long_iri, "related_activities": "true"},
        {"activity": unit},
        {"registration": registration.lower()},
        {"verb": "http://adlnet.gov/expapi/verbs/completed"},
    ]
    rows = text("SELECT seq, CAST(key AS text) AS key, related FROM statement_index ORDER BY 1, 2, 3")
    engine = create_async_engine(url)

    async def found(client: httpx.AsyncClient) -> list[list[str]]:
        pages = [(await client.get("/xapi/statements", params=f)).json()["statements"] for f in filters]
        return [sorted(s["id"] for s in page) for page in pages]

    try:
        cred, before = await _stored(url, statements, found)
        assert all(before) and first["id"] in before[0] and len(before[1]) == 3
        async with engine.connect() as conn:
            hashed = (await conn.execute(rows)).all()
        await _migrate(engine, "0019")
        async with engine.connect() as conn:
            named = (await conn.execute(rows)).all()
        assert len(named) == len(hashed)
        assert any(r.key.startswith("i:#") for r in named)
        assert f"r:{registration.lower()}" in {r.key for r in named}
        await _migrate(engine, "head")
        async with engine.connect() as conn:
            assert (await conn.execute(rows)).all() == hashed
        assert await _read_again(url, cred, found) == before
    finally:
        await engine.dispose()
        await asyncio.to_thread(drop_database, url, admin)


_KEYED = {
    "activities": "key",
    "analytics_hourly": "activity_key, learner_key",
    "analytics_progress": "activity_key, learner_key",
    "analytics_activity": "activity_key",
    "analytics_presence": "learner_key",
    "analytics_month_learners": "activity_key, learner_key",
    "analytics_activity_months": "activity_key",
    "analytics_children": "parent_key, child_key",
    "analytics_names": "activity_key",
    "cohort_members": "learner_key",
    "cohort_assignments": "activity_key",
    "activity_costs": "activity_key",
}


async def test_the_analytics_keys_survive_0023_both_ways():
    """0023 turns the analytics keys into 16 bytes in SQL; the code computes the same bytes
    in Python, so every figure, target group and cost is found as before, and the downgrade
    gives each key its text again (a long IRI hashed for its size, a non-ASCII one, the
    store as a whole)."""
    url, admin = await asyncio.to_thread(create_database)
    long_iri = "https://kurs.example.no/" + "lang/" * 120
    course = "https://kurs.example.no/øving-ære"
    people = [{"mbox": f"mailto:p{n}@example.no"} for n in range(6)]
    statements = [
        {
            "actor": p,
            "verb": {"id": "http://adlnet.gov/expapi/verbs/completed"},
            "object": {"id": course, "definition": {"name": {"nb": "Øving"}}},
            "context": {"contextActivities": {"parent": [{"id": long_iri}]}},
            "timestamp": f"2026-05-0{n + 1}T10:00:00Z",
            "result": {"duration": f"PT{n + 1}M"},
        }
        for n, p in enumerate(people)
    ]
    answers = [
        ("/analytics/completion", {"activity": course}),
        ("/analytics/completion", {"activity": long_iri}),
        ("/analytics/activities", {}),
        ("/analytics/dropoff", {"activity": long_iri}),
        ("/analytics/engagement", {"interval": "week"}),
        ("/analytics/assignments", {"activity": course}),
        ("/analytics/assignments/learners", {"activity": course}),
        ("/analytics/costs", {}),
        ("/xapi/activities", {"activityId": course}),
    ]
    engine = create_async_engine(url)

    async def asked(client: httpx.AsyncClient) -> list[object]:
        found = []
        for path, params in answers:
            r = await client.get(path, params=params)
            assert r.status_code == 200, (path, r.text)
            body = r.json()
            if isinstance(body, dict):
                body.pop("as_of", None)
            found.append(body)
        return found

    async def rows() -> dict[str, list[tuple[object, ...]]]:
        async with engine.connect() as conn:
            return {
                table: [tuple(r) for r in await conn.execute(text(f"SELECT * FROM {table} ORDER BY {keys}"))]
                for table, keys in _KEYED.items()
            }

    try:
        with running_server(url) as srv:
            cred = make_credential(url, "all,analytics/read,analytics/learners,cohorts")
            async with httpx.AsyncClient(base_url=srv.url, auth=cred.auth, headers=V2) as c:
                assert (await c.post("/xapi/statements", json=statements)).status_code == 200
                assert (await c.put("/analytics/cohorts/Brann", json={})).status_code == 201
                r = await c.put("/analytics/cohorts/Brann/members", json=people[:5])
                assert r.status_code == 200, r.text
                r = await c.put("/analytics/cohorts/Brann/assignments", json={"activity": course})
                assert r.status_code == 200, r.text
                cost = {"activity": course, "amount": "1200.50", "currency": "NOK"}
                assert (await c.put("/analytics/costs", json=cost)).status_code == 200
                await rollups_folded(url)
                before = await asked(c)
        assert before[0]["groups"][0]["learners_completed"] == 6
        assert before[5]["groups"][0]["assigned"] == 5
        hashed = await rows()
        assert all(hashed.values())
        await _migrate(engine, "0022")
        named = await rows()
        assert {t: len(r) for t, r in named.items()} == {t: len(r) for t, r in hashed.items()}
        activities = {r[1] for r in named["analytics_activity"]}
        assert course in activities and "#" + hashlib.sha256(long_iri.encode()).hexdigest() in activities
        assert "" in {r[1] for r in named["analytics_hourly"]}
        assert {r[2] for r in named["cohort_members"]} == {f"mbox:{p['mbox']}" for p in people[:5]}
        await _migrate(engine, "head")
        assert await rows() == hashed
        with running_server(url) as srv:
            async with httpx.AsyncClient(base_url=srv.url, auth=cred.auth, headers=V2) as c:
                assert await asked(c) == before
    finally:
        await engine.dispose()
        await asyncio.to_thread(drop_database, url, admin)


async def test_statements_are_served_alike_across_0024_both_ways():
    """0024 keeps each statement as its json text instead of jsonb: the downgrade gives jsonb
    holding the same JSON, and what jsonb held is served alike after the upgrade (non-ASCII
    text, escapes, numbers of every kind, nesting)."""
    url, admin = await asyncio.to_thread(create_database)
    statements = [
        {
            "actor": {"name": "Åse Ødegård", "mbox": "mailto:ase@example.no"},
            "verb": {"id": "http://adlnet.gov/expapi/verbs/answered", "display": {"nb-NO": "svarte «ja»"}},
            "object": {"id": "https://kurs.example.no/øving-ære", "definition": {"name": {"nb-NO": "Øving"}}},
            "result": {
                "score": {"scaled": 0.925, "raw": 37, "max": 40},
                "response": 'a "quoted" \\ back\tslash',
                "extensions": {"https://example.no/x": {"nested": [1, 2.5, -0.0001, True, None, [{}]]}},
            },
        },
        {"actor": {"mbox": "mailto:per@example.no"}, "verb": {"id": "http://example.no/verbs/liked"},
         "object": {"id": "https://kurs.example.no/brannvern"}},
    ]  # fmt: skip
    column = text(
        "SELECT data_type FROM information_schema.columns"
        " WHERE table_name = 'statements' AND column_name = 'statement'"
    )
    stored = text("SELECT CAST(statement AS text) AS doc FROM statements ORDER BY seq")
    engine = create_async_engine(url)

    async def served(client: httpx.AsyncClient) -> list[dict[str, object]]:
        page = (await client.get("/xapi/statements", params={"ascending": "true"})).json()
        return page["statements"]  # type: ignore[no-any-return]

    try:
        cred, at_head = await _stored(url, statements, served)
        assert [s["result"] for s in at_head if "result" in s] == [statements[0]["result"]]
        await _migrate(engine, "0023")
        async with engine.connect() as conn:
            assert (await conn.execute(column)).scalar_one() == "jsonb"
            as_jsonb = [json.loads(r.doc) for r in await conn.execute(stored)]
        assert as_jsonb == at_head
        await _migrate(engine, "head")
        async with engine.connect() as conn:
            assert (await conn.execute(column)).scalar_one() == "json"
        assert await _read_again(url, cred, served) == at_head
    finally:
        await engine.dispose()
        await asyncio.to_thread(drop_database, url, admin)
