"""The rollups off the request path: an elected worker folds stored statements, answers say
how fresh they are, another process takes over when the worker's process dies, and the
folded figures equal a recount."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from lrs.analytics import writes as analytics_writes
from lrs.analytics.writes import ROLLUP_TABLES
from lrs.config import Settings
from lrs.ops import analytics as analytics_ops
from lrs.ops import credentials as credential_ops
from lrs.ops import statements as statement_ops
from lrs.ops.caller import Caller
from lrs.store.database import Database
from lrs.xapi.statements import prepare
from lrs.xapi.timestamps import parse_timestamp
from lrs.xapi.versions import Version
from tests.harness import (
    Server,
    create_database,
    drop_database,
    make_credential,
    metric,
    new_store,
    rollups_folded,
    run_cli,
    running_server,
    start_server,
    stop_server,
)

V2 = {"X-Experience-API-Version": "2.0.0"}
COMPLETED = "http://adlnet.gov/expapi/verbs/completed"
EXPERIENCED = "http://adlnet.gov/expapi/verbs/experienced"
VOIDED = "http://adlnet.gov/expapi/verbs/voided"
START = datetime(2026, 4, 6, 7, tzinfo=UTC)
PROGRAMME = "https://courses.example.no/programme"


def learner(n: int) -> dict[str, Any]:
    return {"account": {"homePage": "https://idp.kommune.example.no", "name": f"worker-test-{n}"}}


def course_statements(course: str, learners: range, completed: bool = True) -> list[dict[str, Any]]:
    out = []
    for n in learners:
        at = START + timedelta(hours=n)
        out.append(
            {
                "actor": learner(n),
                "verb": {"id": EXPERIENCED},
                "object": {"id": course},
                "timestamp": at.isoformat(),
            }
        )
        if completed:
            out.append(
                {
                    "actor": learner(n),
                    "verb": {"id": COMPLETED},
                    "object": {"id": course},
                    "timestamp": (at + timedelta(minutes=20)).isoformat(),
                    "result": {"duration": "PT20M"},
                }
            )
    return out


@pytest.fixture
def fresh_database() -> Iterator[str]:
    url, admin = create_database()
    try:
        yield url
    finally:
        drop_database(url, admin)


async def completion(server: Server, auth: tuple[str, str], course: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server.url, auth=auth) as c:
        r = await c.get("/analytics/completion", params={"activity": course})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_figures_wait_for_the_worker_and_say_how_fresh_they_are(fresh_database):
    """A server that does not run the worker stores and answers, but its figures stay as of
    before the new statements until a process with the worker folds them."""
    url = fresh_database
    run_cli(url, "store", "settings", "default", "--set", "min_group_size=1")
    cred = make_credential(url)
    course = f"https://kurs.example.no/{uuid.uuid4().hex[:8]}"
    with running_server(url, background_worker="false") as quiet:
        async with httpx.AsyncClient(base_url=quiet.xapi, auth=cred.auth, headers=V2) as c:
            r = await c.post("/statements", json=course_statements(course, range(3)))
            assert r.status_code == 200, r.text
            stored = parse_timestamp(
                (await c.get("/statements", params={"limit": 1})).json()["statements"][0]["stored"]
            )
        waiting = await completion(quiet, cred.auth, course)
        assert waiting["groups"][0]["learners_started"] == 0
        as_of = parse_timestamp(waiting["as_of"])
        assert as_of is not None and stored is not None and as_of <= stored
        async with httpx.AsyncClient(base_url=quiet.url) as c:
            metrics = (await c.get("/metrics")).text
        assert metric(metrics, "lrs_rollup_pending_statements") == 6
        assert metric(metrics, "lrs_rollup_lag_seconds") > 0
        assert metric(metrics, "lrs_background_leader") == 0

        with running_server(url) as working:
            await rollups_folded(url)
            folded = await completion(quiet, cred.auth, course)
            group = folded["groups"][0]
            assert (group["learners_started"], group["learners_completed"]) == (3, 3)
            fresh = parse_timestamp(folded["as_of"])
            assert fresh is not None and fresh > stored
            async with httpx.AsyncClient(base_url=working.url) as c:
                metrics = (await c.get("/metrics")).text
            assert metric(metrics, "lrs_rollup_pending_statements") == 0
            assert metric(metrics, "lrs_rollup_lag_seconds") == 0
            assert metric(metrics, "lrs_background_leader") == 1


async def test_another_process_takes_over_when_the_worker_dies(fresh_database):
    url = fresh_database
    run_cli(url, "store", "settings", "default", "--set", "min_group_size=1")
    cred = make_credential(url)
    first, second = start_server(url), start_server(url)
    try:

        async def leader(*candidates: Server) -> Server:
            for _ in range(100):
                for srv in candidates:
                    async with httpx.AsyncClient(base_url=srv.url) as c:
                        if metric((await c.get("/metrics")).text, "lrs_background_leader") == 1:
                            return srv
                await asyncio.sleep(0.1)
            raise AssertionError("no process was elected")

        elected = await leader(first, second)
        survivor = second if elected is first else first
        elected.process.send_signal(signal.SIGKILL)
        elected.process.wait(10)
        course = f"https://kurs.example.no/{uuid.uuid4().hex[:8]}"
        async with httpx.AsyncClient(base_url=survivor.xapi, auth=cred.auth, headers=V2) as c:
            r = await c.post("/statements", json=course_statements(course, range(4)))
            assert r.status_code == 200, r.text
        await rollups_folded(url, timeout=30)
        assert await leader(survivor) is survivor
        group = (await completion(survivor, cred.auth, course))["groups"][0]
        assert (group["learners_started"], group["learners_completed"]) == (4, 4)
    finally:
        stop_server(first)
        stop_server(second)


async def test_after_concurrent_ingest_the_folded_figures_equal_a_recount(server):
    """Concurrent singles, batches and a voiding, folded by the worker; then `lrs analytics
    rebuild` recounts from the statements, and every answer stays the same."""
    name = new_store(server.database_url, "fold", min_group_size="1")
    writer = make_credential(server.database_url, "statements/write", name).auth
    analyst = make_credential(server.database_url, "analytics/read", name).auth
    course = f"https://kurs.example.no/{uuid.uuid4().hex[:8]}"
    singles = course_statements(course, range(0, 40))
    batches = [course_statements(course, range(n, n + 10), completed=False) for n in range(40, 80, 10)]
    async with httpx.AsyncClient(base_url=server.xapi, auth=writer, headers=V2, timeout=60) as c:
        results = await asyncio.gather(
            *(c.post("/statements", json=s) for s in singles),
            *(c.post("/statements", json=b) for b in batches),
        )
        assert all(r.status_code == 200 for r in results)
        void = {
            "actor": learner(0),
            "verb": {"id": "http://adlnet.gov/expapi/verbs/voided"},
            "object": {"objectType": "StatementRef", "id": results[1].json()[0]},
        }
        assert (await c.post("/statements", json=void)).status_code == 200
    asks = [
        ("/completion", {"activity": course}),
        ("/engagement", {"interval": "day"}),
        ("/engagement/hours", {}),
        ("/activities", {}),
        ("/learners", {"activity": course}),
    ]

    async def answers() -> list[Any]:
        await rollups_folded(server.database_url)
        out = []
        async with httpx.AsyncClient(base_url=server.url, auth=analyst) as c:
            for path, params in asks:
                if path == "/learners":
                    continue  # needs analytics/learners; the aggregates suffice
                body = (await c.get("/analytics" + path, params=params)).json()
                body.pop("as_of")
                out.append(body)
        return out

    folded = await answers()
    assert folded[0]["groups"][0]["learners_started"] == 80
    assert folded[0]["groups"][0]["learners_completed"] == 39  # learner 0's completion was voided
    run_cli(server.database_url, "analytics", "rebuild", "--store", name)
    assert await answers() == folded


async def test_a_store_may_keep_its_figures_in_the_write_transaction(server):
    name = new_store(server.database_url, "inline", min_group_size="1", rollups_in_transaction="true")
    writer = make_credential(server.database_url, "statements/write", name).auth
    analyst = make_credential(server.database_url, "analytics/read", name).auth
    course = f"https://kurs.example.no/{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=server.xapi, auth=writer, headers=V2) as c:
        assert (await c.post("/statements", json=course_statements(course, range(2)))).status_code == 200
    # No waiting: the answer to the write came after the figures changed.
    group = (await completion(server, analyst, course))["groups"][0]
    assert (group["learners_started"], group["learners_completed"]) == (2, 2)


async def test_a_rebuild_during_ingest_counts_every_statement_once(server):
    """`lrs analytics rebuild` while writes keep arriving and the worker keeps folding: what
    the rebuild counted and what stayed queued add up to every statement, exactly once."""
    name = new_store(server.database_url, "rebuild", min_group_size="1")
    writer = make_credential(server.database_url, "statements/write", name).auth
    analyst = make_credential(server.database_url, "analytics/read", name).auth
    course = f"https://kurs.example.no/{uuid.uuid4().hex[:8]}"
    stop = asyncio.Event()

    async def ingest() -> int:
        sent = 0
        async with httpx.AsyncClient(base_url=server.xapi, auth=writer, headers=V2, timeout=60) as c:
            while not stop.is_set():
                body = course_statements(course, range(sent, sent + 5))
                assert (await c.post("/statements", json=body)).status_code == 200
                sent += 5
        return sent

    writing = asyncio.create_task(ingest())
    await asyncio.sleep(1)
    for _ in range(2):
        await asyncio.to_thread(run_cli, server.database_url, "analytics", "rebuild", "--store", name)
    stop.set()
    learners = await writing
    await rollups_folded(server.database_url)
    group = (await completion(server, analyst, course))["groups"][0]
    assert (group["learners_started"], group["learners_completed"]) == (learners, learners)


async def _figures(db: Any) -> dict[str, list[Any]]:
    """Every rollup row of every store, in a stable order (progress rows without
    `was_completed`, which only says what the row said before its last upsert)."""

    async def read(conn: Any) -> dict[str, list[Any]]:
        out = {}
        for table in ROLLUP_TABLES:  # analytics_zone included: the zone a fold recorded
            rows = (await conn.execute(text(f"SELECT * FROM {table}"))).mappings().all()
            out[table] = sorted(
                tuple(sorted((k, repr(v)) for k, v in r.items() if k != "was_completed")) for r in rows
            )
        return out

    return await db.read(read)


@contextlib.asynccontextmanager
async def in_process(database_url: str) -> AsyncIterator[tuple[AsyncEngine, Database, Settings, Caller]]:
    """A migrated database, and what the ops need to write and fold in this process."""
    await asyncio.to_thread(run_cli, database_url, "migrate")
    key = (await asyncio.to_thread(make_credential, database_url)).key
    engine = create_async_engine(database_url, pool_size=4)
    try:
        db = Database(engine)
        credential = await credential_ops.lookup(db, key)
        assert credential is not None
        yield engine, db, Settings(database_url=database_url), Caller(credential)
    finally:
        await engine.dispose()


async def test_batches_computed_ahead_fold_to_the_figures_a_recount_gives(fresh_database):
    """The worker computes the next batch while the last one's SQL runs. Its figures equal a
    rebuild's, and a statement voided after its batch was computed is noticed: that batch is
    computed again in its transaction."""
    async with in_process(fresh_database) as (_engine, db, settings, who):
        sent = [
            {**s, "id": str(uuid.uuid4())}
            for s in course_statements("https://courses.example.no/ahead", range(600))
        ]

        async def write(statements: list[dict[str, Any]]) -> None:
            batch = [prepare(s, Version.V2, who.authority, "statement") for s in statements]
            await statement_ops.write(db, settings, who, batch)

        for at in range(0, len(sent), 200):  # six write transactions: six queue rows
            await write(sent[at : at + 200])
        folder = analytics_ops.Folder(db, settings, statements=400)  # two queue rows a batch
        assert await folder.fold() == 2  # the first batch, computed in its transaction
        while not folder.ahead_ready:
            await asyncio.sleep(0.01)
        # The second batch is computed; one of its statements is voided before its fold.
        await write(
            [
                {
                    "actor": learner(0),
                    "verb": {"id": VOIDED},
                    "object": {"objectType": "StatementRef", "id": sent[500]["id"]},
                }
            ]
        )
        while await folder.fold():
            pass
        await folder.close()
        # The third batch and the voiding's row were folded as computed; the second was not.
        assert folder.folded_ahead == 2
        folded = await _figures(db)
        assert folded["analytics_activity"], "nothing was folded"
        await analytics_ops.rebuild(db, settings, "test", "default")
        assert await _figures(db) == folded


async def test_a_rebuild_of_many_batches_counts_what_the_fold_counted(fresh_database):
    """A rebuild reads 2,000 statements a batch and adds up only each learner's rows batch by
    batch; an activity's figures and name, and the periods and months, it counts once at the
    end. Over 4,500 statements whose learners, modules, names and periods recur across its
    batches (and one voided statement), it ends with the rows the worker's fold left, and it
    says its count after each batch."""
    async with in_process(fresh_database) as (_engine, db, settings, who):
        sent = []
        for turn in range(15):
            for n in range(300):
                module = f"{PROGRAMME}/module-{n % 7}"
                language = "se" if turn == 0 else "en" if turn % 2 else "nb"  # Sami in the first batch only
                sent.append(
                    {
                        "id": str(uuid.uuid4()),
                        "actor": learner(n),
                        "verb": {"id": COMPLETED if turn == 14 else EXPERIENCED},
                        "object": {
                            "id": module,
                            "definition": {"name": {language: f"Module {n % 7}, {turn}"}},
                        },
                        "context": {"contextActivities": {"parent": [{"id": PROGRAMME}]}},
                        "timestamp": (START + timedelta(hours=turn * 20 + n % 24)).isoformat(),
                        "result": {"duration": f"PT{turn + 1}M"},
                    }
                )
        sent.append(
            {
                "actor": learner(0),
                "verb": {"id": VOIDED},
                "object": {"objectType": "StatementRef", "id": sent[10]["id"]},
            }
        )
        for at in range(0, len(sent), 1500):
            batch = [prepare(s, Version.V2, who.authority, "statement") for s in sent[at : at + 1500]]
            await statement_ops.write(db, settings, who, batch)
        folder = analytics_ops.Folder(db, settings, statements=700)
        while await folder.fold():
            pass
        await folder.close()
        folded = await _figures(db)
        assert len(folded["analytics_activity"]) == 8 and len(folded["analytics_period"]) > 20
        counts: list[int] = []
        total = await analytics_ops.rebuild(db, settings, "test", "default", counts.append)
        assert total == 4500  # the voided one left out, the voiding one counted
        assert counts == [2000, 4000, 4500]
        assert await _figures(db) == folded


async def test_a_rebuild_keeps_the_latest_name_groups_and_rating_as_the_fold_does(
    fresh_database, monkeypatch
):
    """A rebuild appends each batch's rows and adds them up at its end; which name, groups
    and rating a learner's row keeps then depends on the order the rows came in, and it
    keeps what folding them one by one keeps: the rating of the latest rating (the later
    statement on a tie), the groups of the latest statement, and the name of the latest
    statement that has one, where a statement older than one before it changes nothing."""
    course = "https://courses.example.no/rated"
    given = [  # (hour, name, platform, rating): stored in this order
        (10, "Kari", "A", 0.3),
        (12, "Kari Nordmann", "B", 0.4),
        (11, "Older", "C", 0.5),  # older than the one before: changes nothing
        (12, None, "D", 0.2),  # as late as the latest: its groups and rating; no name to give
        (9, "Oldest", "E", 0.9),
    ]
    sent = []
    for hour, name, platform, rating in given:
        actor: dict[str, Any] = {**learner(1), **({"name": name} if name else {})}
        sent.append(
            {
                "actor": actor,
                "verb": {"id": "http://id.tincanapi.com/verb/rated"},
                "object": {"id": course},
                "result": {"score": {"scaled": rating}},
                "context": {"platform": platform},
                "timestamp": START.replace(hour=hour).isoformat(),
            }
        )

    async def kept(db: Database) -> tuple[Any, ...]:
        async def read(conn: Any) -> tuple[Any, ...]:
            row = (
                await conn.execute(
                    text(
                        "SELECT learner_name, groups->>'platform' AS platform, rating_scaled, rating_at"
                        " FROM analytics_progress WHERE activity_id = :c"
                    ),
                    {"c": course},
                )
            ).one()
            return tuple(row)

        return await db.read(read)

    async with in_process(fresh_database) as (_engine, db, settings, who):
        for s in sent:  # one write, one queue row, one fold each
            await statement_ops.write(db, settings, who, [prepare(s, Version.V2, who.authority, "statement")])
        folder = analytics_ops.Folder(db, settings, statements=1)
        while await folder.fold():
            pass
        await folder.close()
        expected = ("Kari Nordmann", "D", 0.2, START.replace(hour=12))
        assert await kept(db) == expected
        folded = await _figures(db)
        monkeypatch.setattr(analytics_writes, "REBUILD_BATCH", 1)  # a batch a statement
        counts: list[int] = []
        assert await analytics_ops.rebuild(db, settings, "test", "default", counts.append) == 5
        assert counts == [1, 2, 3, 4, 5]
        assert await kept(db) == expected
        assert await _figures(db) == folded


async def test_a_rebuild_leaves_the_planner_the_statistics_of_the_rows_it_wrote(fresh_database):
    """The planner's row counts describe the rollups as the rebuild left them as soon as it
    commits, without waiting for autovacuum (kept off here)."""
    async with in_process(fresh_database) as (engine, db, settings, who):
        async with engine.begin() as conn:
            for table in ("analytics_hourly", "analytics_progress"):
                await conn.execute(text(f"ALTER TABLE {table} SET (autovacuum_enabled = false)"))
        sent = course_statements("https://courses.example.no/planned", range(40))
        # Queued, not folded: the rows are the rebuild's.
        await statement_ops.write(
            db, settings, who, [prepare(s, Version.V2, who.authority, "statement") for s in sent]
        )
        await analytics_ops.rebuild(db, settings, "test", "default")
        async with engine.connect() as conn:
            for table in ("analytics_hourly", "analytics_progress"):
                rows = (await conn.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one()
                planned = (
                    await conn.execute(
                        text("SELECT reltuples FROM pg_class WHERE relname = :t"), {"t": table}
                    )
                ).scalar_one()
                assert rows > 40 and planned == rows, table


async def test_a_fold_takes_its_statements_however_many_writes_they_came_in(fresh_database):
    """Single statements are one queue row each: a fold still takes about the statements it
    asks for (it took a tenth of them, as many rows as a batch of ten a row would fill), and
    says whether the queue held more."""
    async with in_process(fresh_database) as (engine, db, settings, who):
        course = "https://courses.example.no/single"
        for s in course_statements(course, range(125)):  # 250 statements
            await statement_ops.write(db, settings, who, [prepare(s, Version.V2, who.authority, "statement")])
        folder = analytics_ops.Folder(db, settings, statements=200)
        assert await folder.fold() == 200
        assert not folder.caught_up
        assert await folder.fold() == 50
        assert folder.caught_up
        await folder.close()
        async with engine.connect() as conn:
            waiting = (await conn.execute(text("SELECT count(*) FROM rollup_queue"))).scalar_one()
            counted = (
                await conn.execute(
                    text(
                        "SELECT learners_started, learners_completed FROM analytics_activity"
                        " WHERE activity_id = :a"
                    ),
                    {"a": course},
                )
            ).one()
        assert (waiting, tuple(counted)) == (0, (125, 125))


async def test_voiding_a_learners_only_statement_of_a_month_takes_them_out_of_it(fresh_database):
    """The month rows follow what is voided: a learner whose only statement in May on a
    course is voided is no longer among its learners of May, one with another statement
    that month still is, and the month's time loses the voided statement's. Every rollup
    then equals a rebuild's."""
    course = "https://courses.example.no/months"
    async with in_process(fresh_database) as (engine, db, settings, who):
        april = course_statements(course, range(3))  # learners 0-2, in April
        may = [
            {**s, "timestamp": (datetime.fromisoformat(s["timestamp"]) + timedelta(days=30)).isoformat()}
            for s in course_statements(course, range(2))  # learners 0-1 again, in May
        ]
        sent = [{**s, "id": str(uuid.uuid4())} for s in april + may]

        async def write(statements: list[dict[str, Any]]) -> None:
            batch = [prepare(s, Version.V2, who.authority, "statement") for s in statements]
            await statement_ops.write(db, settings, who, batch)

        async def may_rows() -> tuple[list[str], float]:
            async with engine.connect() as conn:
                learners = await conn.execute(
                    text(
                        "SELECT p.learner FROM analytics_month_learners m"
                        " JOIN analytics_activity a USING (store_id, activity_key)"
                        " JOIN analytics_progress p USING (store_id, activity_key, learner_key)"
                        " WHERE a.activity_id = :c AND m.month = 2026 * 12 + 4 ORDER BY 1"
                    ),
                    {"c": course},
                )
                seconds = await conn.execute(
                    text(
                        "SELECT m.duration_seconds FROM analytics_activity_months m"
                        " JOIN analytics_activity a USING (store_id, activity_key)"
                        " WHERE a.activity_id = :c AND m.month = 2026 * 12 + 4"
                    ),
                    {"c": course},
                )
                return [r.learner for r in learners], seconds.scalar_one()

        await write(sent)
        folder = analytics_ops.Folder(db, settings, statements=1000)
        while await folder.fold():
            pass
        learners, seconds = await may_rows()
        assert len(learners) == 2 and seconds == 2 * 20 * 60
        # Learner 0's two May statements both voided, learner 1's completion only.
        voided = [sent[6]["id"], sent[7]["id"], sent[9]["id"]]
        await write(
            [
                {
                    "actor": learner(0),
                    "verb": {"id": VOIDED},
                    "object": {"objectType": "StatementRef", "id": i},
                }
                for i in voided
            ]
        )
        while await folder.fold():
            pass
        await folder.close()
        left, seconds = await may_rows()
        assert left == [k for k in learners if "worker-test-1" in k] and len(left) == 1
        assert seconds == 0
        folded = await _figures(db)
        await analytics_ops.rebuild(db, settings, "test", "default")
        assert await _figures(db) == folded


@pytest.mark.parametrize("fold_from,rebuild_from", [(10**6, 1), (1, 10**6)], ids=["json-fold", "staged-fold"])
async def test_rows_sent_as_json_or_staged_fold_alike(fresh_database, monkeypatch, fold_from, rebuild_from):
    """An upsert's rows reach PostgreSQL as one JSON parameter or, from STAGE_FROM rows on,
    through a temporary table. Folding one way (voiding included, which upserts again in the
    voiding's transaction) and rebuilding the other gives the same rows."""
    async with in_process(fresh_database) as (_engine, db, settings, who):
        sent = [
            {**s, "id": str(uuid.uuid4()), "context": {"contextActivities": {"parent": [{"id": PROGRAMME}]}}}
            for s in course_statements("https://courses.example.no/both-ways", range(300))
        ]
        later = [{"actor": learner(n), "verb": {"id": VOIDED}, "object": {"objectType": "StatementRef",
                  "id": sent[n]["id"]}} for n in (1, 3)]  # fmt: skip
        for batch in (sent[:300], sent[300:], [*later, *course_statements(PROGRAMME, range(300, 320))]):
            prepared = [prepare(s, Version.V2, who.authority, "statement") for s in batch]
            await statement_ops.write(db, settings, who, prepared)
        monkeypatch.setattr(analytics_writes, "STAGE_FROM", fold_from)
        folder = analytics_ops.Folder(db, settings, statements=400)
        while await folder.fold():
            pass
        await folder.close()
        folded = await _figures(db)
        assert len(folded["analytics_progress"]) > 600 and len(folded["analytics_hourly"]) > 900
        monkeypatch.setattr(analytics_writes, "STAGE_FROM", rebuild_from)
        await analytics_ops.rebuild(db, settings, "test", "default")
        assert await _figures(db) == folded
