"""Export and import: a store moved to a second running LRS (its own database) and back out
again byte for byte; the admin API's export and gzip import; bad lines, stops and skips."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from lrs.config import Settings
from lrs.ops import transfer
from lrs.store.database import Database
from lrs.store.keys import index_key
from tests.factories import activity, agent, voiding
from tests.factories import statement_with_id as statement
from tests.harness import (
    Server,
    make_credential,
    new_store,
    own_databases,
    run_cli,
    running_server,
)
from tests.test_attachments_api import BOUNDARY, attachment_meta, multipart, part_headers

V2 = {"X-Experience-API-Version": "2.0.0"}


V1 = {"X-Experience-API-Version": "1.0.3"}


@pytest.fixture(scope="module")
def second() -> Iterator[Server]:
    """Another LRS with a database of its own."""
    with own_databases(1) as (url,), running_server(url) as srv:
        yield srv


@pytest.fixture(scope="module")
async def source(server: Server) -> dict[str, Any]:
    """A store holding a bit of everything: 2.0 and 1.0.3 statements, a voided one and its
    voiding statement, an attachment, canonical definitions, and all three document kinds."""
    name = new_store(server.database_url, "export")
    writer = make_credential(
        server.database_url, "statements/write,statements/read,define,state,profile", name
    )
    learner = agent("Kari")
    course = activity(
        "brannvern", name={"nb": "Brannvern"}, type="http://adlnet.gov/expapi/activities/course"
    )
    async with httpx.AsyncClient(base_url=server.xapi, auth=writer.auth, timeout=30) as c:
        batch = [statement(actor=learner, obj=course) for _ in range(40)]
        # What COPY's text format escapes, and what JSON does, must come back as it was.
        batch[0]["result"] = {"response": 'C:\\kurs\\"bevis"\n\tæøå \u2028 \\\\ \\n'}
        assert (await c.post("/statements", json=batch, headers=V2)).status_code == 200
        old = statement(actor=learner, obj=activity("gammel"))
        assert (await c.post("/statements", json=old, headers=V1)).status_code == 200
        victim = statement(actor=learner, obj=course)
        assert (await c.post("/statements", json=victim, headers=V2)).status_code == 200
        r = await c.post("/statements", json={**voiding(victim["id"]), "id": str(uuid.uuid4())}, headers=V2)
        assert r.status_code == 200, r.text
        content = b"%PDF-1.4 kursbevis " + uuid.uuid4().bytes
        with_file = statement(actor=learner, obj=course, attachments=[attachment_meta(content)])
        r = await c.post(
            "/statements",
            content=multipart([with_file], [(content, part_headers(content))]),
            headers={**V2, "Content-Type": f"multipart/mixed; boundary={BOUNDARY}"},
        )
        assert r.status_code == 200, r.text
        owner = json.dumps(learner)
        docs = [
            ("/activities/state", {"activityId": course["id"], "agent": owner, "stateId": "bokmerke"}),
            ("/activities/profile", {"activityId": course["id"], "profileId": "oppsett"}),
            ("/agents/profile", {"agent": owner, "profileId": "preferanser"}),
        ]
        for path, params in docs:
            created = {**V2, "If-None-Match": "*"}
            r = await c.put(path, params=params, json={"side": 3, "path": path}, headers=created)
            assert r.status_code == 204, r.text
    admin = make_credential(server.database_url, "admin")
    return {"name": name, "writer": writer, "admin": admin, "ids": [s["id"] for s in batch], "docs": docs}


def statement_lines(path: Path) -> list[str]:
    with gzip.open(path, "rt") as f:
        return [line for line in f if not line.startswith('{"lrs:')]


def records(path: Path) -> list[str]:
    with gzip.open(path, "rt") as f:
        return [line for line in f if line.startswith('{"lrs:') and not line.startswith('{"lrs:export"')]


async def test_round_trip_to_a_second_lrs_is_byte_identical(server, second, source, tmp_path):
    out = tmp_path / "export.jsonl.gz"
    run_cli(
        server.database_url,
        "export",
        "--store",
        source["name"],
        "--with-documents",
        "--with-attachments",
        "--output",
        str(out),
    )
    exported = statement_lines(out)
    assert len(exported) == 44  # 40 + the 1.0.3 one + the voided one + its voiding + the attachment's
    kinds = [json.loads(r) for r in records(out)]
    assert {next(iter(k)) for k in kinds} == {"lrs:attachment", "lrs:activity", "lrs:document"}

    target = new_store(second.database_url, "import")
    done = run_cli(second.database_url, "import", str(out), "--store", target, "--jobs", "2")
    assert "imported 44 statements, 3 documents, 1 attachments" in done.stderr, done.stderr
    again = tmp_path / "again.jsonl.gz"
    run_cli(
        second.database_url,
        "export",
        "--store",
        target,
        "--with-documents",
        "--with-attachments",
        "--output",
        str(again),
    )
    assert statement_lines(again) == exported
    assert records(again) == records(out)

    # The second LRS serves them as the first does: the same statement, the voided one hidden,
    # the documents' bytes and the attachment's.
    reader = make_credential(second.database_url, "statements/read,state,profile", target)
    async with (
        httpx.AsyncClient(base_url=server.xapi, auth=source["writer"].auth, headers=V2) as a,
        httpx.AsyncClient(base_url=second.xapi, auth=reader.auth, headers=V2) as b,
    ):
        for sid in source["ids"][:3]:
            mine = await a.get("/statements", params={"statementId": sid})
            theirs = await b.get("/statements", params={"statementId": sid})
            assert theirs.status_code == 200 and theirs.json() == mine.json()
        listed = (await b.get("/statements", params={"limit": 100})).json()["statements"]
        assert len(listed) == 43  # the voided statement is not listed
        for path, params in source["docs"]:
            mine = await a.get(path, params=params)
            theirs = await b.get(path, params=params)
            assert theirs.content == mine.content and theirs.headers["etag"] == mine.headers["etag"]
        with_file = next(s for s in listed if "attachments" in s)
        r = await b.get("/statements", params={"statementId": with_file["id"], "attachments": "true"})
        assert r.headers["content-type"].startswith("multipart/mixed")
        assert with_file["attachments"][0]["sha2"].encode() in r.content

    # Importing the same file again changes nothing.
    run_cli(second.database_url, "import", str(out), "--store", target)
    third = tmp_path / "third.jsonl.gz"
    run_cli(second.database_url, "export", "--store", target, "--output", str(third))
    assert statement_lines(third) == exported


async def test_admin_api_export_and_gzip_import(server, second, source):
    admin = source["admin"]
    async with httpx.AsyncClient(base_url=server.url, auth=admin.auth, timeout=60) as c:
        r = await c.get(f"/admin/stores/{source['name']}/export")
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
        # Lines end at "\n" only: a JSON text may hold U+2028, which str.splitlines() splits at.
        lines = r.text.removesuffix("\n").split("\n")
        assert len(lines) == 44 and all(json.loads(line)["id"] for line in lines)
        assert (await c.get("/admin/stores/nowhere/export")).status_code == 404
        bad = await c.get(f"/admin/stores/{source['name']}/export", params={"since": "yesterday"})
        assert bad.status_code == 400 and "since" in bad.json()["message"]
        entries = (await c.get("/admin/audit", params={"store": source["name"]})).json()
        assert any(e["action"] == "store.export" for e in entries)

    target = new_store(second.database_url, "api-import")
    other_admin = make_credential(second.database_url, "admin")
    async with httpx.AsyncClient(base_url=second.url, auth=other_admin.auth, timeout=60) as c:
        r = await c.post(
            f"/admin/stores/{target}/import",
            content=gzip.compress(("\n".join(lines) + "\n").encode()),
            headers={"Content-Encoding": "gzip", "Content-Type": "application/x-ndjson"},
        )
        assert r.status_code == 200, r.text
        assert r.json()["statements"] == 44 and r.json()["errors"] == []
        back = await c.get(f"/admin/stores/{target}/export")
        assert back.text.removesuffix("\n").split("\n") == lines
        entries = (await c.get("/admin/audit", params={"store": target})).json()
        assert any(e["action"] == "store.import" for e in entries)
        anonymous = await httpx.AsyncClient(base_url=second.url).post(f"/admin/stores/{target}/import")
        assert anonymous.status_code == 401


async def test_bad_lines_are_named_and_skipped_or_stop_the_batch(second):
    target = new_store(second.database_url, "bad-lines")
    admin = make_credential(second.database_url, "admin")
    good = [statement() for _ in range(3)]
    no_verb = statement()
    del no_verb["verb"]
    body = "\n".join(
        [json.dumps(good[0]), json.dumps(no_verb), json.dumps(good[1]), "{not json", json.dumps(good[2])]
    )
    reader = make_credential(second.database_url, "statements/read", target)
    async with (
        httpx.AsyncClient(base_url=second.url, auth=admin.auth, timeout=60) as c,
        httpx.AsyncClient(base_url=second.xapi, auth=reader.auth, headers=V2) as x,
    ):
        # Stop: the batch the bad line is in is not stored, not even the line before it.
        r = await c.post(f"/admin/stores/{target}/import", content=body)
        assert r.status_code == 400
        assert r.json()["message"].startswith("line 2") and "verb" in r.json()["message"]
        assert r.json()["report"]["statements"] == 0
        assert (await x.get("/statements", params={"statementId": good[0]["id"]})).status_code == 404

        # Skip: every good line is stored, every bad one reported by its number.
        r = await c.post(f"/admin/stores/{target}/import", params={"on_error": "skip"}, content=body)
        assert r.status_code == 200
        report = r.json()
        assert report["statements"] == 3 and [e["line"] for e in report["errors"]] == [2, 4]
        for s in good:
            assert (await x.get("/statements", params={"statementId": s["id"]})).status_code == 200

        # A statement whose id is taken by other content is a conflict on its line only.
        changed = {**good[1], "verb": {"id": "http://adlnet.gov/expapi/verbs/failed"}}
        fresh = statement()
        r = await c.post(
            f"/admin/stores/{target}/import",
            params={"on_error": "skip"},
            content=json.dumps(fresh) + "\n" + json.dumps(changed) + "\n",
        )
        assert r.json()["statements"] == 1 and r.json()["errors"][0]["line"] == 2
        assert (await x.get("/statements", params={"statementId": fresh["id"]})).status_code == 200

        r = await c.post(
            f"/admin/stores/{target}/import",
            content=b"\x1f\x8bnot gzip",
            headers={"Content-Encoding": "gzip"},
        )
        assert r.status_code == 400 and "gzip" in r.json()["message"]


async def test_cli_import_of_another_lrss_statements(second, tmp_path):
    """Plain JSON Lines from elsewhere: statements without `stored` are stored now, those
    with an authority keep it; a bad line stops the import with its number and exit 1."""
    target = new_store(second.database_url, "elsewhere")
    theirs = {"objectType": "Agent", "account": {"homePage": "https://other-lrs.example", "name": "vendor"}}
    kept = {**statement(), "authority": theirs, "stored": "2025-05-01T10:00:00.000Z"}
    plain = statement()
    path = tmp_path / "from-elsewhere.jsonl"
    path.write_text(json.dumps(kept) + "\n" + json.dumps(plain) + "\n")
    run_cli(second.database_url, "import", str(path), "--store", target)
    reader = make_credential(second.database_url, "statements/read", target)
    async with httpx.AsyncClient(base_url=second.xapi, auth=reader.auth, headers=V2) as x:
        got = (await x.get("/statements", params={"statementId": kept["id"]})).json()
        # The same instant, written as this LRS writes every `stored`.
        assert got["authority"] == theirs and got["stored"] == "2025-05-01T10:00:00.000000Z"
        other = (await x.get("/statements", params={"statementId": plain["id"]})).json()
        assert other["authority"]["account"]["name"] == "cli" and other["stored"] > "2026"

    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps(statement()) + "\n" + '{"actor": {}}\n')
    failed = run_cli(second.database_url, "import", str(broken), "--store", target, check=False)
    assert failed.returncode == 1
    assert f"{broken}:2: line 2" in failed.stderr and "stopped at line 2" in failed.stderr


async def _stored_ids(engine: Any, store: str) -> list[str]:
    """A store's statement ids in seq order."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT s.id FROM statements s JOIN stores t ON t.id = s.store_id"
                " WHERE t.name = :name ORDER BY s.seq"
            ),
            {"name": store},
        )
        return [str(r.id) for r in rows]


async def _stored_rows(engine: Any, store: str) -> list[tuple[Any, ...]]:
    """A store's statements in seq order: JSON, columns, and index rows."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT s.id, s.statement, s.timestamp, s.verb_id, s.voided, s.voids, s.refers_to, s.stored,"
                " (SELECT array_agg(i.key::text || ':' || i.related::text ORDER BY i.key, i.related)"
                " FROM statement_index i WHERE i.store_id = s.store_id AND i.seq = s.seq) AS keys"
                " FROM statements s JOIN stores t ON t.id = s.store_id WHERE t.name = :name ORDER BY s.seq"
            ),
            {"name": store},
        )
        return [tuple(r) for r in rows]


@pytest.mark.parametrize("pseudonymised", [False, True])
async def test_a_team_of_processes_stores_what_one_process_stores(second, pseudonymised):
    """Statements of every shape, imported by processes of their own (``jobs``), are stored as
    the importing process stores them when it reads them itself: the same JSON, columns and
    index rows, with and without their ``stored`` and ``timestamp``, pseudonymised alike (so
    that the same file imported again the other way adds nothing and clashes with nothing);
    repeated statements, bad lines and records are taken alike."""
    pseudonyms = (
        {"pseudonymise": "true", "pseudonym_home_page": "https://pseudo.example"} if pseudonymised else {}
    )
    here, there = (new_store(second.database_url, name, **pseudonyms) for name in ("team-1", "team-2"))
    engine = create_async_engine(second.database_url)
    db = Database(engine)
    settings = Settings(database_url=second.database_url)
    target = statement()
    shapes = [
        target,
        statement(timestamp="2026-03-01T12:00:00.123+02:00", version="2.0.0"),
        {**statement(), "stored": "2025-05-01T10:00:00Z"},
        {**statement(timestamp="2026-03-01T10:00:00Z"), "stored": "2025-05-01T10:00:00.5+01:00"},
        statement(
            context={"registration": str(uuid.uuid4()).upper(), "contextActivities": {"parent": activity()}}
        ),
        {**voiding(target["id"]), "id": str(uuid.uuid4())},
        statement(obj={"objectType": "StatementRef", "id": target["id"]}),
        statement(
            obj={
                "objectType": "SubStatement",
                "actor": agent(),
                "verb": {"id": "http://x.example/v"},
                "object": activity(),
            }
        ),
        statement(result={"response": 'æøå "sitat" \u2028 \\ \n', "score": {"scaled": 0.5}}),
    ]

    # A statement again, twice in one batch: stored once, accepted each time.
    again = [shapes[2], shapes[2]]

    async def lines() -> AsyncIterator[bytes]:
        yield b"".join(json.dumps(s).encode() + b"\n" for s in [*shapes, *again])
        yield b'\n{not json\n{"lrs:activity": {"id": 1}}\n'

    def comparable(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        # What the store stamps differs from one import to the next: its own clock.
        out = []
        for shape, (sid, doc, ts, *rest, stored, keys) in zip(shapes, rows, strict=True):
            doc = dict(doc)
            if "stored" not in shape:
                doc.pop("stored")
                stored = None
            if "timestamp" not in shape:
                doc.pop("timestamp")
                ts = None
            if pseudonymised:  # each store has a secret of its own
                doc, keys = {k: v for k, v in doc.items() if k not in ("actor", "object", "authority")}, None
            out.append((sid, doc, ts, *rest, stored, keys))
        return out

    try:
        one = await transfer.import_lines(db, settings, "test", here, lines(), batch=3, on_error="skip")
        team = await transfer.import_lines(
            db, settings, "test", there, lines(), batch=3, on_error="skip", jobs=2
        )
        assert one.as_dict() == team.as_dict()
        assert [n for n, _ in team.errors] == [13, 14] and team.statements == len(shapes) + 2
        first = await _stored_rows(engine, here)
        assert comparable(first) == comparable(await _stored_rows(engine, there))
        assert [str(r[0]) for r in first] == [s["id"] for s in shapes]
        assert first[0][4] and not any(r[4] for r in first[1:])  # the target is voided

        other_way = await transfer.import_lines(
            db, settings, "test", here, lines(), batch=3, on_error="skip", jobs=2
        )
        assert other_way.statements == len(shapes) + 2 and [n for n, _ in other_way.errors] == [13, 14]
        assert await _stored_rows(engine, here) == first
    finally:
        await engine.dispose()


async def _chunks(lines: list[dict[str, Any]]) -> AsyncIterator[bytes]:
    yield "".join(json.dumps(s) + "\n" for s in lines).encode()


@pytest.mark.parametrize("jobs", [1, 2])
async def test_an_import_in_many_batches_stops_after_the_batches_before_the_bad_line(second, jobs):
    """Batches queue up behind the one being written: a stop keeps those before the bad line
    (and only those), whether parsing or a write found the fault; batches read and written
    by processes of their own (``jobs``) alike."""
    target = new_store(second.database_url, f"batches-{jobs}")
    engine = create_async_engine(second.database_url)
    db = Database(engine)
    settings = Settings(database_url=second.database_url)

    async def stored(lines: list[dict[str, Any]]) -> list[bool]:
        there = set(await _stored_ids(engine, target))
        return [s["id"] in there for s in lines]

    try:
        # Parsing finds it: two whole batches before line 6 are kept, line 5 is not.
        good = [statement() for _ in range(6)]
        no_verb = statement()
        del no_verb["verb"]
        lines = [*good[:5], no_verb, good[5]]
        report = await transfer.import_lines(db, settings, "test", target, _chunks(lines), batch=2, jobs=jobs)
        assert report.stopped and report.statements == 4 and [n for n, _ in report.errors] == [6]
        assert report.lines == 6
        assert await stored(lines) == [True] * 4 + [False] * 3

        # A write finds it: line 4 clashes with a stored statement; its batch and the ones
        # queued after it are not written.
        clash = {**good[0], "verb": {"id": "http://adlnet.gov/expapi/verbs/failed"}}
        more = [statement() for _ in range(7)]
        lines = [*more[:3], clash, *more[3:]]
        report = await transfer.import_lines(db, settings, "test", target, _chunks(lines), batch=2, jobs=jobs)
        assert report.stopped and report.statements == 2 and [n for n, _ in report.errors] == [4]
        assert await stored(more) == [True] * 2 + [False] * 5

        # Skipping: everything but the clash, in the file's order.
        report = await transfer.import_lines(
            db, settings, "test", target, _chunks(lines), batch=2, on_error="skip", jobs=jobs
        )
        assert not report.stopped and report.statements == 7 and [n for n, _ in report.errors] == [4]
        assert await stored(more) == [True] * 7
        ids = {s["id"] for s in more}
        assert [i for i in await _stored_ids(engine, target) if i in ids] == [s["id"] for s in more]
    finally:
        await engine.dispose()


@pytest.mark.parametrize(("in_transaction", "jobs"), [("false", 1), ("true", 1), ("false", 2), ("true", 2)])
async def test_batches_written_at_once_keep_the_files_order_and_see_each_other(second, in_transaction, jobs):
    """Two batches are written at a time. A batch that voids or refers to a statement of the
    batch before it still finds it, and every statement keeps its place in the file. With
    the rollups in the write transaction, the batches are written one after the other; with
    ``jobs``, processes of their own read and write them."""
    target = new_store(
        second.database_url, f"at-once-{jobs}", rollups_in_transaction=in_transaction, min_group_size="1"
    )
    engine = create_async_engine(second.database_url)
    db = Database(engine)
    settings = Settings(database_url=second.database_url)
    learner = agent()
    t1, t2, t3 = (statement(actor=learner, object=activity(f"at-once-{n}")) for n in range(3))
    void_t1, void_t3 = voiding(t1["id"]), voiding(t3["id"])
    void_t1["id"], void_t3["id"] = str(uuid.uuid4()), str(uuid.uuid4())
    ref_t2 = statement(object={"objectType": "StatementRef", "id": t2["id"]})
    filler = [statement() for _ in range(4)]
    # In batches of two: each of the second and the fourth touches the batch before it.
    lines = [t1, t2, void_t1, ref_t2, filler[0], void_t3, t3, filler[1], *filler[2:]]
    try:
        report = await transfer.import_lines(db, settings, "test", target, _chunks(lines), batch=2, jobs=jobs)
        assert not report.errors and report.statements == len(lines)
        found = [(str(r[0]), r[4]) for r in await _stored_rows(engine, target)]  # id, voided
        async with engine.connect() as conn:
            matched = await conn.execute(
                text(
                    "SELECT s.id FROM statement_index i JOIN statements s"
                    " ON s.store_id = i.store_id AND s.seq = i.seq JOIN stores t ON t.id = s.store_id"
                    " WHERE t.name = :name AND i.key = CAST(:key AS uuid)"
                ),
                {"name": target, "key": index_key("activity", t2["object"]["id"])},
            )
            referring = {str(r.id) for r in matched}
    finally:
        await engine.dispose()
    assert [i for i, _ in found] == [s["id"] for s in lines]
    assert {i for i, voided in found if voided} == {t1["id"], t3["id"]}
    assert referring == {t2["id"], ref_t2["id"]}


async def test_an_import_whose_process_is_killed_ends_clearly_and_runs_again(second, tmp_path):
    """A member of ``lrs import --jobs 2`` killed in the middle (as the OOM killer would): the
    command ends with status 1 and says so, without a traceback; what is stored is the file's
    beginning in its order, and the same command run again stores the rest."""
    target = new_store(second.database_url, "killed")
    lines = [statement() for _ in range(30_000)]
    path = tmp_path / "many.jsonl"
    path.write_text("".join(json.dumps(s) + "\n" for s in lines))
    engine = create_async_engine(second.database_url)

    command = [sys.executable, "-m", "lrs", "import", str(path), "--store", target, "--jobs", "2"]
    env = {**os.environ, "LRS_DATABASE_URL": second.database_url}
    importing = psutil.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while len(await _stored_ids(engine, target)) < 2000 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        members = [p for p in importing.children() if "spawn_main" in " ".join(p.cmdline())]
        assert len(members) == 2
        members[0].kill()
        _, err = importing.communicate(timeout=120)
        assert importing.returncode == 1
        assert "an import process ended unexpectedly" in err and "Traceback" not in err, err
        kept = await _stored_ids(engine, target)
        assert 2000 <= len(kept) < len(lines) and kept == [s["id"] for s in lines[: len(kept)]]

        again = run_cli(second.database_url, "import", str(path), "--store", target, "--jobs", "2")
        assert f"imported {len(lines)} statements" in again.stderr
        assert await _stored_ids(engine, target) == [s["id"] for s in lines]
    finally:
        if importing.poll() is None:
            importing.kill()
        await engine.dispose()
