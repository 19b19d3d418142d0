"""Personal data under GDPR, over HTTP and the CLI: a person's copy (Article 15), their
erasure (Article 17) with its dry run and receipt, retention, and pseudonymisation at ingest.

The fixture store holds a person, Kari, in every role a statement gives: actor under two
identifiers, member of a group actor, object, instructor, team member, 2.0 context agent,
SubStatement actor; with a voided statement of hers, statements of others referring to hers,
an attachment only hers and one she shares with Ola, documents, a cohort, and a forwarding
rule that delivered her statements to another store.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import uuid
import zipfile
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from lrs.config import Settings
from lrs.ops import retention
from lrs.store.database import Database
from lrs.store.db import create_engine
from lrs.store.keys import index_key
from lrs.xapi.agents import ifi_key
from tests.factories import COMPLETED, activity, agent, statement_with_id, voiding
from tests.harness import Server, make_credential, new_store, rollups_folded, run_cli
from tests.test_attachments_api import BOUNDARY, attachment_meta, multipart, part_headers

V2 = {"X-Experience-API-Version": "2.0.0"}
KARI = {"objectType": "Agent", "name": "Kari Nordmann", "mbox": "mailto:kari.nordmann@kommune.example.no"}
KARI_ACCOUNT = {"objectType": "Agent", "account": {"homePage": "https://lms.example.no", "name": "kari-77"}}
# Everything that would tell who she is, in any form a statement can carry it.
KARI_TRACES = (
    "kari.nordmann",
    "Kari Nordmann",
    "kari-77",
    hashlib.sha1(KARI["mbox"].encode()).hexdigest(),
)
PER = agent("Per")
OLA = agent("Ola")
EXPERIENCED = "http://adlnet.gov/expapi/verbs/experienced"
MENTORED = "https://kommune.example.no/verbs/mentored"
LIKED = "https://kommune.example.no/verbs/liked"


def scored(
    actor: dict[str, Any], course: dict[str, Any], verb: str = COMPLETED, **extra: Any
) -> dict[str, Any]:
    return statement_with_id(actor=actor, verb=verb, obj=course, result={"score": {"scaled": 0.8}}, **extra)


async def post(c: httpx.AsyncClient, body: Any) -> None:
    r = await c.post("/statements", json=body, headers=V2)
    assert r.status_code == 200, r.text


async def post_with_file(c: httpx.AsyncClient, s: dict[str, Any], content: bytes) -> None:
    r = await c.post(
        "/statements",
        content=multipart([s], [(content, part_headers(content))]),
        headers={**V2, "Content-Type": f"multipart/mixed; boundary={BOUNDARY}"},
    )
    assert r.status_code == 200, r.text


async def everything(server: Server, cred: Any) -> list[dict[str, Any]]:
    """Every statement of the store, voided ones included (by id), as served."""
    out: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=server.xapi, auth=cred.auth, headers=V2) as c:
        url: str | None = "/statements?limit=500"
        while url:
            body = (await c.get(url.removeprefix("/xapi"))).json()
            out += body["statements"]
            url = body.get("more") or None
    return out


async def sql(server: Server, query: str, **params: Any) -> list[Any]:
    engine = create_async_engine(server.database_url)
    try:
        async with engine.begin() as conn:
            result = await conn.execute(text(query), params)
            return list(result.all()) if result.returns_rows else []
    finally:
        await engine.dispose()


async def retention_ran_just_now(server: Server, store: str) -> None:
    """Record a retention run of the store now. The server's worker runs a store's retention
    at once when it has never run and then once a day, so it then leaves the store to the
    test instead of purging it at a moment of its own."""
    await sql(
        server,
        "INSERT INTO retention_runs (store_id, last_run, deleted) SELECT id, now(), 0 FROM stores"
        " WHERE name = :n ON CONFLICT (store_id) DO UPDATE SET last_run = now()",
        n=store,
    )


async def analytics(server: Server, cred: Any, course: str) -> list[Any]:
    """The store's figures as every analytics route gives them (without `as_of`)."""
    await rollups_folded(server.database_url)
    out = []
    async with httpx.AsyncClient(base_url=server.url, auth=cred.auth, timeout=30) as c:
        for path, params in (
            ("/completion", {"activity": course}),
            ("/completion", {"activity": course, "group_by": "team"}),
            ("/engagement", {"interval": "day"}),
            ("/engagement/hours", {}),
            ("/activities", {}),
            ("/learners", {"activity": course}),
        ):
            r = await c.get("/analytics" + path, params=params)
            assert r.status_code == 200, r.text
            body = r.json()
            body.pop("as_of", None)
            out.append(body)
    return out


@pytest.fixture
async def kommune(server: Server) -> dict[str, Any]:
    """A store with Kari in every role (see the module's docstring)."""
    name = new_store(server.database_url, "gdpr", min_group_size="1")
    target = new_store(server.database_url, "region")
    receiver = make_credential(server.database_url, "statements/write,statements/read", target)
    admin = make_credential(server.database_url, "admin")
    async with httpx.AsyncClient(base_url=server.url, auth=admin.auth) as c:
        rule = {
            "name": "til-regionen",
            "endpoint": server.xapi,
            "key": receiver.key,
            "secret": receiver.secret,
        }
        assert (await c.post(f"/admin/stores/{name}/forwarding", json=rule)).status_code == 201
    writer = make_credential(server.database_url, "all", name)
    course = activity("brannvern", name={"nb": "Brannvern"})
    other_course = activity("hms")
    own_file = b"kursbevis for Kari " + uuid.uuid4().bytes
    shared_file = b"felles kursplan " + uuid.uuid4().bytes
    s: dict[str, dict[str, Any]] = {
        "own": scored(KARI, course),
        "own_attempt": scored(KARI, other_course, verb=EXPERIENCED),
        "as_account": scored(KARI_ACCOUNT, other_course),
        "to_void": scored(KARI, course, verb=EXPERIENCED),
        "group": scored({"objectType": "Group", "name": "Par", "member": [KARI, PER]}, course),
        "instructor": scored(OLA, course, context={"instructor": KARI}),
        "team": scored(OLA, course, context={"team": {"objectType": "Group", "member": [KARI, PER]}}),
        "context_agent": scored(
            OLA, course, context={"contextAgents": [{"objectType": "contextAgent", "agent": KARI}]}
        ),
        "object": statement_with_id(actor=OLA, verb=MENTORED, obj=KARI),
        "substatement": statement_with_id(
            actor=OLA,
            verb=MENTORED,
            obj={"objectType": "SubStatement", "actor": KARI, "verb": {"id": COMPLETED}, "object": course},
        ),
        "per": scored(PER, course),
        "ola": scored(OLA, other_course),
    }
    with_own_file = scored(KARI, course, verb=EXPERIENCED, attachments=[attachment_meta(own_file)])
    kari_shared = scored(KARI, other_course, verb=EXPERIENCED, attachments=[attachment_meta(shared_file)])
    ola_shared = scored(OLA, other_course, verb=EXPERIENCED, attachments=[attachment_meta(shared_file)])
    async with httpx.AsyncClient(base_url=server.xapi, auth=writer.auth, timeout=30) as c:
        await post(c, list(s.values()))
        await post_with_file(c, with_own_file, own_file)
        await post_with_file(c, kari_shared, shared_file)
        await post_with_file(c, ola_shared, shared_file)
        s["with_own_file"], s["kari_shared"], s["ola_shared"] = with_own_file, kari_shared, ola_shared
        s["voiding"] = {**voiding(s["to_void"]["id"], actor=OLA), "id": str(uuid.uuid4())}
        s["liking"] = statement_with_id(
            actor=PER, verb=LIKED, obj={"objectType": "StatementRef", "id": s["own"]["id"]}
        )
        await post(c, [s["voiding"], s["liking"]])
        for who, doc in ((KARI, "bokmerke"), (OLA, "bokmerke")):
            params = {"activityId": course["id"], "agent": json.dumps(who), "stateId": doc}
            assert (
                await c.put("/activities/state", params=params, json={"side": 4}, headers=V2)
            ).status_code == 204
        params = {"agent": json.dumps(KARI), "profileId": "preferanser"}
        assert (
            await c.put(
                "/agents/profile", params=params, json={"språk": "nb"}, headers={**V2, "If-None-Match": "*"}
            )
        ).status_code == 204
    office = make_credential(server.database_url, "cohorts,analytics/read,analytics/learners", name)
    async with httpx.AsyncClient(base_url=server.url + "/analytics", auth=office.auth) as c:
        assert (await c.put("/cohorts/brann-avdeling")).status_code == 201
        members = [KARI, OLA, PER]
        assert (await c.put("/cohorts/brann-avdeling/members", json=members)).status_code == 200
    # The rule delivers everything to the region's store before anyone asks for erasure.
    for _ in range(300):
        waiting = await sql(
            server,
            "SELECT count(*) FROM forward_outbox o JOIN forward_rules r ON r.id = o.rule_id"
            " JOIN stores t ON t.id = r.store_id WHERE t.name = :n",
            n=name,
        )
        if waiting[0][0] == 0:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the forwarding rule did not deliver")
    return {
        "name": name,
        "writer": writer,
        "office": office,
        "admin": admin,
        "course": course["id"],
        "s": s,
        "own_file": hashlib.sha256(own_file).hexdigest(),
        "shared_file": hashlib.sha256(shared_file).hexdigest(),
    }


async def erase(server: Server, k: dict[str, Any], dry_run: bool) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=server.url, auth=k["admin"].auth, timeout=60) as c:
        r = await c.post(
            f"/admin/stores/{k['name']}/persons/erase",
            params={"dry_run": str(dry_run).lower()},
            json={"agents": [{"mbox": KARI["mbox"]}, KARI_ACCOUNT]},
        )
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


THEIRS = ("own", "own_attempt", "as_account", "to_void", "group", "with_own_file", "kari_shared")
MENTIONING = ("instructor", "team", "context_agent", "object", "substatement")


async def test_a_dry_run_reports_every_role_and_changes_nothing(server, kommune):
    before = (
        await everything(server, kommune["writer"]),
        await analytics(server, kommune["office"], kommune["course"]),
    )
    receipt = await erase(server, kommune, dry_run=True)
    assert receipt["dry_run"] is True
    assert receipt["statements"] == {
        "erased": len(THEIRS),
        "redacted": len(MENTIONING),
        "by_role": {
            "actor": 6,
            "group_member": 1,
            "object": 1,
            "instructor": 1,
            "team": 1,
            "context_agent": 1,
            "substatement": 1,
        },
    }
    assert receipt["documents"] == 2  # her state and her agent profile; Ola's state is not hers
    assert receipt["attachments"] == 1  # the shared one stays: Ola's statement declares it
    assert receipt["cohort_memberships"] == 1
    assert receipt["rollup_rows"] > 0
    assert receipt["forwarded_to"] == [
        {"rule": "til-regionen", "endpoint": server.xapi, "statements": len(THEIRS) + len(MENTIONING)}
    ]
    after = (
        await everything(server, kommune["writer"]),
        await analytics(server, kommune["office"], kommune["course"]),
    )
    assert after == before
    assert not await sql(
        server, "SELECT 1 FROM audit_log WHERE action = 'person.erase' AND store = :n", n=kommune["name"]
    )


async def test_the_copy_holds_everything_about_her_with_a_summary(server, kommune):
    async with httpx.AsyncClient(base_url=server.url, auth=kommune["admin"].auth, timeout=60) as c:
        r = await c.post(
            f"/admin/stores/{kommune['name']}/persons/export",
            json={"agents": [{"mbox": KARI["mbox"]}, KARI_ACCOUNT]},
        )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip"
    files = {n: f.read(n) for f in [zipfile.ZipFile(io.BytesIO(r.content))] for n in f.namelist()}
    statements = json.loads(files["statements.json"])
    ids = {x["statement"]["id"] for x in statements}
    assert ids == {kommune["s"][k]["id"] for k in THEIRS + MENTIONING}
    roles = {x["statement"]["id"]: x["roles"] for x in statements}
    assert roles[kommune["s"]["group"]["id"]] == ["group_member"]
    assert roles[kommune["s"]["substatement"]["id"]] == ["substatement"]
    assert {x["statement"]["id"]: x["voided"] for x in statements}[kommune["s"]["to_void"]["id"]] is True
    documents = json.loads(files["documents.json"])
    assert sorted(d["kind"] for d in documents) == ["agent_profile", "state"]
    for d in documents:
        assert json.loads(files[d["file"]]) in ({"side": 4}, {"språk": "nb"})
    attached = {a["sha2"] for a in json.loads(files["attachments.json"])}
    assert attached == {kommune["own_file"], kommune["shared_file"]}
    for sha in attached:
        assert hashlib.sha256(files[f"attachments/{sha}"]).hexdigest() == sha
    figures = json.loads(files["analytics.json"])
    assert kommune["course"] in {f["activity_id"] for f in figures}
    assert [m["cohort"] for m in json.loads(files["cohorts.json"])] == ["brann-avdeling"]
    summary_nb, summary_en = files["LESMEG.txt"].decode(), files["README.txt"].decode()
    assert f"{len(ids)} læringsutsagn" in summary_nb and "2 dokumenter" in summary_nb
    assert (
        f"{len(ids)} learning statements" in summary_en and "6 where you are the one who did it" in summary_en
    )
    entry = await sql(
        server,
        "SELECT details::text FROM audit_log WHERE action = 'person.export' AND store = :n",
        n=kommune["name"],
    )
    assert entry and not any(t in entry[0][0] for t in KARI_TRACES)


async def test_erasure_removes_her_everywhere_and_keeps_everyone_else(server, kommune):
    s, writer = kommune["s"], kommune["writer"]
    receipt = await erase(server, kommune, dry_run=False)
    assert receipt["dry_run"] is False and receipt["statements"]["erased"] == len(THEIRS)
    served = await everything(server, writer)
    text_of_store = json.dumps(served)
    assert not any(t in text_of_store for t in KARI_TRACES)
    by_id = {x["id"]: x for x in served}
    async with httpx.AsyncClient(base_url=server.xapi, auth=writer.auth, headers=V2) as c:
        for k in THEIRS:
            for param in ("statementId", "voidedStatementId"):
                assert (await c.get("/statements", params={param: s[k]["id"]})).status_code == 404, k
        for ifi in ({"mbox": KARI["mbox"]}, KARI_ACCOUNT):
            r = await c.get("/statements", params={"agent": json.dumps(ifi), "related_agents": "true"})
            assert r.json()["statements"] == []
        # Redacted, same ids: she is dropped where she may be, replaced where she must be.
        assert "instructor" not in by_id[s["instructor"]["id"]]["context"]
        assert by_id[s["team"]["id"]]["context"]["team"]["member"] == [PER]
        assert "contextAgents" not in by_id[s["context_agent"]["id"]]["context"]
        erased = {"objectType": "Agent", "account": {"homePage": "urn:lrs:erased", "name": "erased"}}
        assert by_id[s["object"]["id"]]["object"] == erased
        assert by_id[s["substatement"]["id"]]["object"]["actor"] == erased
        # The voiding statement and the statement liking hers stay, pointing at a missing id.
        voiding_id = s["voiding"]["id"]
        assert (await c.get("/statements", params={"statementId": voiding_id})).status_code == 200
        assert by_id[s["liking"]["id"]]["object"] == {"objectType": "StatementRef", "id": s["own"]["id"]}
        per = await c.get("/statements", params={"agent": json.dumps(PER)})
        assert s["per"]["id"] in {x["id"] for x in per.json()["statements"]}
        # Documents: hers gone, Ola's kept.
        for who, code in ((KARI, 404), (OLA, 200)):
            params = {"activityId": s["own"]["object"]["id"], "agent": json.dumps(who), "stateId": "bokmerke"}
            assert (await c.get("/activities/state", params=params)).status_code == code
        r = await c.get("/statements", params={"statementId": s["ola_shared"]["id"], "attachments": "true"})
        assert r.status_code == 200 and b"felles kursplan" in r.content
    kept = {
        r[0]
        for r in await sql(
            server,
            "SELECT a.sha2 FROM attachments a JOIN stores t ON t.id = a.store_id WHERE t.name = :n",
            n=kommune["name"],
        )
    }
    assert kept == {kommune["shared_file"]}
    index = await sql(
        server,
        "SELECT count(*) FROM statement_index i JOIN stores t ON t.id = i.store_id"
        " WHERE t.name = :n AND i.key = ANY(CAST(:keys AS uuid[]))",
        n=kommune["name"],
        keys=[index_key("agent", ifi_key(a)) for a in (KARI, {"mbox_sha1sum": KARI_TRACES[3]}, KARI_ACCOUNT)],
    )
    assert index[0][0] == 0
    async with httpx.AsyncClient(base_url=server.url + "/analytics", auth=kommune["office"].auth) as c:
        members = (await c.get("/cohorts/brann-avdeling/members")).json()
        assert sorted(m["name"] for m in members) == ["Ola", "Per"]
    # The figures equal a recount from what is left, and name her nowhere.
    figures = await analytics(server, kommune["office"], kommune["course"])
    assert not any(t in json.dumps(figures) for t in KARI_TRACES)
    run_cli(server.database_url, "analytics", "rebuild", "--store", kommune["name"])
    assert await analytics(server, kommune["office"], kommune["course"]) == figures
    # The receipt is in the audit trail, without her identifiers, naming the forwarding target.
    entry = await sql(
        server,
        "SELECT actor, details::text FROM audit_log WHERE action = 'person.erase' AND store = :n",
        n=kommune["name"],
    )
    assert entry[0][0] == kommune["admin"].key
    assert not any(t in entry[0][1] for t in KARI_TRACES)
    assert json.loads(entry[0][1])["forwarded_to"][0]["rule"] == "til-regionen"
    # A second erasure finds nothing left.
    again = await erase(server, kommune, dry_run=True)
    assert again["statements"] == {"erased": 0, "redacted": 0, "by_role": {}}
    assert (again["documents"], again["attachments"], again["rollup_rows"], again["cohort_memberships"]) == (
        0,
        0,
        0,
        0,
    )


async def test_the_cli_erases_and_refuses_what_names_nobody(server):
    name = new_store(server.database_url, "gdpr-cli")
    writer = make_credential(server.database_url, "statements/write,statements/read", name)
    mine = statement_with_id(actor=KARI, obj=activity())
    async with httpx.AsyncClient(base_url=server.xapi, auth=writer.auth) as c:
        await post(c, mine)
    agent_arg = json.dumps({"mbox": KARI["mbox"]})
    dry = json.loads(
        run_cli(
            server.database_url, "person", "erase", "--store", name, "--agent", agent_arg, "--dry-run"
        ).stdout
    )
    assert dry["statements"]["erased"] == 1 and dry["asked_by"] == "cli"
    done = json.loads(
        run_cli(server.database_url, "person", "erase", "--store", name, "--agent", agent_arg).stdout
    )
    assert done["statements"]["erased"] == 1 and done["dry_run"] is False
    async with httpx.AsyncClient(base_url=server.xapi, auth=writer.auth, headers=V2) as c:
        assert (await c.get("/statements", params={"statementId": mine["id"]})).status_code == 404
    refused = run_cli(
        server.database_url, "person", "erase", "--store", name, "--agent", '{"name": "Kari"}', check=False
    )
    assert refused.returncode != 0 and "agents[0]" in refused.stderr
    admin = make_credential(server.database_url, "admin")
    async with httpx.AsyncClient(base_url=server.url, auth=admin.auth) as c:
        r = await c.post(f"/admin/stores/{name}/persons/erase", json={"agents": [{"mbox": "kari"}]})
        assert r.status_code == 400 and "agents[0].mbox" in r.json()["message"]
        r = await c.post("/admin/stores/no-such-store/persons/erase", json={"agents": [KARI]})
        assert r.status_code == 404
    vendor = make_credential(server.database_url, "all", name)
    async with httpx.AsyncClient(base_url=server.url, auth=vendor.auth) as c:
        r = await c.post(f"/admin/stores/{name}/persons/export", json={"agents": [KARI]})
        assert r.status_code == 403


async def test_her_statements_arriving_during_erasure_are_whole_after_it(server):
    """A writer keeps posting her statements while she is erased: each one is afterwards
    either gone entirely or stored entirely (found by her identifier, counted in the figures)."""
    name = new_store(server.database_url, "gdpr-race", min_group_size="1")
    writer = make_credential(
        server.database_url, "statements/write,statements/read,analytics/read,analytics/learners", name
    )
    course = activity()
    async with httpx.AsyncClient(base_url=server.xapi, auth=writer.auth, headers=V2, timeout=60) as c:
        await post(c, [scored(KARI, course) for _ in range(300)] + [scored(PER, course)])
        stop = asyncio.Event()

        async def keep_writing() -> int:
            sent = 0
            while not stop.is_set():
                await post(c, [scored(KARI, course) for _ in range(5)])
                sent += 5
            return sent

        writing = asyncio.create_task(keep_writing())
        await asyncio.sleep(0.3)
        receipts = [
            await erase(server, {"name": name, "admin": make_credential(server.database_url, "admin")}, False)
        ]
        await asyncio.sleep(0.3)
        stop.set()
        sent = await writing
        assert sent > 0 and receipts[0]["statements"]["erased"] >= 300
        stored = await sql(
            server,
            "SELECT count(*) FROM statements s JOIN stores t ON t.id = s.store_id"
            " WHERE t.name = :n AND s.statement -> 'actor' ->> 'mbox' = :m",
            n=name,
            m=KARI["mbox"],
        )
        found = (await c.get("/statements", params={"agent": json.dumps(KARI), "limit": 0})).json()[
            "statements"
        ]
        assert len(found) == stored[0][0]
        assert receipts[0]["statements"]["erased"] + stored[0][0] == 300 + sent
    figures = await analytics(server, writer, course["id"])
    run_cli(server.database_url, "analytics", "rebuild", "--store", name)
    assert await analytics(server, writer, course["id"]) == figures
    started = figures[0]["groups"][0]["learners_started"]
    assert started == (2 if stored[0][0] else 1)


async def import_lines(server: Server, admin: Any, store: str, statements: list[dict[str, Any]]) -> None:
    body = "".join(json.dumps(x) + "\n" for x in statements)
    async with httpx.AsyncClient(base_url=server.url, auth=admin.auth, timeout=60) as c:
        r = await c.post(f"/admin/stores/{store}/import", content=body.encode())
    assert r.status_code == 200, r.text


def stamp(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


async def test_retention_deletes_what_is_older_and_recounts_the_figures(server):
    name = new_store(server.database_url, "retention", min_group_size="1")
    admin = make_credential(server.database_url, "admin")
    reader = make_credential(server.database_url, "statements/read,analytics/read,analytics/learners", name)
    await retention_ran_just_now(server, name)
    async with httpx.AsyncClient(base_url=server.url, auth=admin.auth) as c:
        r = await c.get(f"/admin/stores/{name}/retention")
        assert r.status_code == 409 and "retention_months" in r.json()["message"]
    run_cli(server.database_url, "store", "settings", name, "--set", "retention_months=2")
    now = datetime.now(UTC)
    course = activity()
    old_file = b"gammelt kursbevis " + uuid.uuid4().bytes
    old = [
        scored(
            agent(),
            course,
            timestamp=stamp(now - timedelta(days=100)),
            stored=stamp(now - timedelta(days=100)),
        )
        for _ in range(4)
    ]
    recent = [
        scored(
            agent(), course, timestamp=stamp(now - timedelta(days=30)), stored=stamp(now - timedelta(days=30))
        )
        for _ in range(3)
    ]
    # A learner with statements on both sides of the cutoff keeps the recent part only.
    both = agent("Begge")
    old.append(
        scored(
            both,
            course,
            verb=EXPERIENCED,
            timestamp=stamp(now - timedelta(days=90)),
            stored=stamp(now - timedelta(days=90)),
        )
    )
    recent.append(
        statement_with_id(
            actor=both,
            verb=EXPERIENCED,
            obj=course,
            timestamp=stamp(now - timedelta(days=10)),
            stored=stamp(now - timedelta(days=10)),
        )
    )
    await import_lines(server, admin, name, old + recent)
    writer = make_credential(server.database_url, "statements/write", name)
    with_file = scored(agent(), course, attachments=[attachment_meta(old_file)])
    async with httpx.AsyncClient(base_url=server.xapi, auth=writer.auth) as c:
        await post_with_file(c, with_file, old_file)
    await sql(
        server,
        "UPDATE statements SET stored = stored - interval '200 days' WHERE id = :id",
        id=with_file["id"],
    )
    before = await analytics(server, reader, course["id"])
    assert before[0]["groups"][0]["learners_started"] == 9
    async with httpx.AsyncClient(base_url=server.url, auth=admin.auth) as c:
        plan = (await c.get(f"/admin/stores/{name}/retention")).json()
        assert (plan["dry_run"], plan["statements"], plan["retention_months"]) == (True, 6, 2)
        assert await analytics(server, reader, course["id"]) == before
        done = (await c.post(f"/admin/stores/{name}/retention/run")).json()
    assert (done["statements"], done["attachments"]) == (6, 1)
    left = await everything(server, reader)
    assert {x["id"] for x in left} == {x["id"] for x in recent}
    figures = await analytics(server, reader, course["id"])
    group = figures[0]["groups"][0]
    assert (group["learners_started"], group["learners_completed"]) == (4, 3)
    run_cli(server.database_url, "analytics", "rebuild", "--store", name)
    assert await analytics(server, reader, course["id"]) == figures
    assert not await sql(
        server, "SELECT 1 FROM attachments WHERE sha2 = :h", h=hashlib.sha256(old_file).hexdigest()
    )
    dry = json.loads(run_cli(server.database_url, "retention", "run", "--store", name, "--dry-run").stdout)
    assert dry["statements"] == 0
    entry = await sql(
        server, "SELECT actor, details FROM audit_log WHERE action = 'retention.run' AND store = :n", n=name
    )
    assert entry[0][0] == admin.key and entry[0][1]["statements"] == 6
    async with httpx.AsyncClient(base_url=server.url) as c:
        page = (await c.get("/metrics")).text
    assert f'lrs_retention_deleted_statements{{store="{name}"}} 6.0' in page
    assert f'lrs_retention_overdue_seconds{{store="{name}"}} 0.0' in page


async def test_retention_keeps_a_statement_stored_exactly_at_the_cutoff(server):
    name = new_store(server.database_url, "boundary", retention_months="1")
    await retention_ran_just_now(server, name)
    admin = make_credential(server.database_url, "admin")
    edge = datetime(2026, 10, 15, 10, 0, 0, 1, tzinfo=UTC)
    at_edge = statement_with_id(actor=agent(), obj=activity(), stored=stamp(edge))
    just_before = statement_with_id(
        actor=agent(), obj=activity(), stored=stamp(edge - timedelta(microseconds=1))
    )
    await import_lines(server, admin, name, [at_edge, just_before])
    engine = create_engine(server.database_url, pool_size=2)
    try:
        db = Database(engine)
        # Run as of one month after the edge: the cutoff is the edge itself.
        outcome = await retention.run(
            db, Settings(), "test", name, at=datetime(2026, 11, 15, 10, 0, 0, 1, tzinfo=UTC)
        )
    finally:
        await engine.dispose()
    assert outcome.cutoff == edge and outcome.statements == 1
    left = await sql(
        server,
        "SELECT s.id::text FROM statements s JOIN stores t ON t.id = s.store_id WHERE t.name = :n",
        n=name,
    )
    assert [r[0] for r in left] == [at_edge["id"]]


async def test_the_worker_runs_retention_by_itself(server):
    name = new_store(server.database_url, "retention-worker")
    admin = make_credential(server.database_url, "admin")
    gone = statement_with_id(
        actor=agent(), obj=activity(), stored=stamp(datetime.now(UTC) - timedelta(days=60))
    )
    kept = statement_with_id(actor=agent(), obj=activity())
    await import_lines(server, admin, name, [gone, kept])
    # The period is set once the statements are in: a run before the import would find
    # nothing, and be the one this test waits for.
    run_cli(server.database_url, "store", "settings", name, "--set", "retention_months=1")
    # The worker looks for due stores once a minute; this store has never run.
    for _ in range(150):
        if await sql(server, "SELECT 1 FROM audit_log WHERE action = 'retention.run' AND store = :n", n=name):
            break
        await asyncio.sleep(0.5)
    else:
        raise AssertionError("the worker did not run retention")
    left = await sql(
        server,
        "SELECT s.id::text FROM statements s JOIN stores t ON t.id = s.store_id WHERE t.name = :n",
        n=name,
    )
    assert [r[0] for r in left] == [kept["id"]]
    entry = await sql(
        server, "SELECT actor FROM audit_log WHERE action = 'retention.run' AND store = :n", n=name
    )
    assert entry[0][0] == "retention"


async def test_a_pseudonymising_store_never_holds_identities(server):
    home = "https://kommune.example.no/lrs"
    name = new_store(
        server.database_url, "pseudo", min_group_size="1", pseudonymise="true", pseudonym_home_page=home
    )
    other = new_store(
        server.database_url, "pseudo2", min_group_size="1", pseudonymise="true", pseudonym_home_page=home
    )
    cred = make_credential(server.database_url, "all", name)
    other_cred = make_credential(server.database_url, "all", other)
    course = activity()
    first = scored(
        KARI,
        course,
        context={"instructor": OLA, "team": {"objectType": "Group", "name": "Lag", "member": [PER]}},
    )
    again = scored({"objectType": "Agent", "mbox": KARI["mbox"]}, course, verb=EXPERIENCED)
    async with httpx.AsyncClient(base_url=server.xapi, auth=cred.auth, headers=V2) as c:
        await post(c, [first, again])
        stored = (await c.get("/statements", params={"statementId": first["id"]})).json()
        assert stored["actor"]["account"]["homePage"] == home and "name" not in stored["actor"]
        assert stored["context"]["instructor"]["account"]["homePage"] == home
        assert stored["context"]["team"]["member"][0]["account"]["homePage"] == home
        assert stored["authority"]["account"]["name"] == cred.key  # who sent it stays known
        assert not any(t in json.dumps(stored) for t in ("kari", "Ola", "Per@"))
        # Her own identifier still finds her statements, as does her pseudonym.
        mine = (await c.get("/statements", params={"agent": json.dumps({"mbox": KARI["mbox"]})})).json()
        assert {x["id"] for x in mine["statements"]} == {first["id"], again["id"]}
        pseudonym = {"account": stored["actor"]["account"]}
        assert (
            len((await c.get("/statements", params={"agent": json.dumps(pseudonym)})).json()["statements"])
            == 2
        )
        # The same statement sent again is the same statement.
        assert (await c.post("/statements", json=first)).status_code == 200
        # Documents by her identifier are kept under her pseudonym.
        params = {"activityId": course["id"], "agent": json.dumps(KARI), "stateId": "s"}
        assert (await c.put("/activities/state", params=params, json={"a": 1})).status_code == 204
        assert (await c.get("/activities/state", params=params)).json() == {"a": 1}
        person = (await c.get("/agents", params={"agent": json.dumps(KARI)})).json()
        assert person["account"] == [stored["actor"]["account"]] and "mbox" not in person
    docs = await sql(
        server,
        "SELECT agent_key FROM documents d JOIN stores t ON t.id = d.store_id WHERE t.name = :n",
        n=name,
    )
    assert docs and all(home in r[0] and "kari" not in r[0] for r in docs)
    # Another store's secret gives her another pseudonym: the two cannot be linked.
    async with httpx.AsyncClient(base_url=server.xapi, auth=other_cred.auth, headers=V2) as c:
        await post(c, scored(KARI, course))
        theirs = (await c.get("/statements", params={"agent": json.dumps(KARI)})).json()["statements"]
        assert theirs[0]["actor"]["account"]["name"] != stored["actor"]["account"]["name"]
    # Analytics count her once, by pseudonym.
    analyst = make_credential(server.database_url, "analytics/read,analytics/learners", name)
    async with httpx.AsyncClient(base_url=server.url, auth=analyst.auth) as c:
        await rollups_folded(server.database_url)
        learners = (await c.get("/analytics/learners", params={"activity": course["id"]})).json()
        assert [x["learner"] for x in learners["learners"]] == [
            f"account:{home}|{stored['actor']['account']['name']}"
        ]
    # Erasure by her own identifier finds her under her pseudonym.
    agent_arg = json.dumps({"mbox": KARI["mbox"]})
    receipt = json.loads(
        run_cli(server.database_url, "person", "erase", "--store", name, "--agent", agent_arg).stdout
    )
    assert receipt["statements"]["erased"] == 2 and receipt["documents"] == 1


async def test_pseudonymise_needs_a_home_page(server):
    name = new_store(server.database_url, "pseudo-bad")
    refused = run_cli(
        server.database_url, "store", "settings", name, "--set", "pseudonymise=true", check=False
    )
    assert refused.returncode != 0 and "pseudonym_home_page" in refused.stderr
