"""The Statement resource over real HTTP against a real server and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import pytest

from lrs.xapi.timestamps import parse_timestamp
from tests.corpus import INVALID, invalid_statement
from tests.factories import (
    ATTEMPTED,
    COMPLETED,
    PASSED,
    activity,
    agent,
    statement,
    unique,
    voiding,
)
from tests.harness import Cred, database_now, make_credential, metric, run_cli


async def post(client: httpx.AsyncClient, body: Any) -> list[str]:
    r = await client.post("/statements", json=body)
    assert r.status_code == 200, r.text
    ids: list[str] = r.json()
    return ids


async def query(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    r = await client.get("/statements", params=params)
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


def ids_of(result: dict[str, Any]) -> list[str]:
    return [s["id"] for s in result["statements"]]


def agent_param(a: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in a.items() if k != "name"})


# --- writing ----------------------------------------------------------------------------------


async def test_post_one_statement_and_read_it_back(client):
    s = statement(
        obj=activity(name={"en-US": "Fire safety"}), result={"score": {"scaled": 0.92}, "duration": "PT12M"}
    )
    [sid] = await post(client, s)
    r = await client.get("/statements", params={"statementId": sid})
    assert r.status_code == 200
    got = r.json()
    assert got["id"] == sid
    assert got["actor"] == s["actor"]
    assert got["result"] == s["result"]
    assert got["version"] == "2.0.0"
    assert got["authority"]["account"]["name"]
    assert parse_timestamp(got["stored"]) is not None
    assert got["timestamp"] == got["stored"]
    assert r.headers["X-Experience-API-Version"] == "2.0.0"
    stored = parse_timestamp(got["stored"])
    assert stored is not None
    assert parsedate_to_datetime(r.headers["Last-Modified"]) == stored.replace(microsecond=0)


async def test_post_batch_keeps_order_and_ids(client):
    given = str(uuid.uuid4())
    batch = [statement(id=given), statement(), statement()]
    ids = await post(client, batch)
    assert ids[0] == given and len(ids) == 3 and len(set(ids)) == 3
    for sid in ids:
        assert (await client.get("/statements", params={"statementId": sid})).status_code == 200


async def test_put_statement_is_idempotent_and_conflicts_on_change(client):
    sid = str(uuid.uuid4())
    s = statement()
    r = await client.put("/statements", params={"statementId": sid}, json=s)
    assert r.status_code == 204, r.text
    r = await client.put("/statements", params={"statementId": sid}, json=s)
    assert r.status_code == 204
    r = await client.post("/statements", json=dict(s, id=sid))
    assert r.status_code == 200 and r.json() == [sid]
    changed = dict(s, verb={"id": PASSED})
    r = await client.put("/statements", params={"statementId": sid}, json=changed)
    assert r.status_code == 409
    got = (await client.get("/statements", params={"statementId": sid})).json()
    assert got["verb"]["id"] == COMPLETED


async def test_put_needs_matching_statement_id(client):
    s = statement(id=str(uuid.uuid4()))
    r = await client.put("/statements", params={"statementId": str(uuid.uuid4())}, json=s)
    assert r.status_code == 400 and "statementId" in r.json()["message"]
    r = await client.put("/statements", json=statement())
    assert r.status_code == 400 and "statementId" in r.json()["message"]


@pytest.mark.parametrize(("name", "mutation", "names"), INVALID, ids=[c[0] for c in INVALID])
async def test_invalid_statement_gets_400_and_stores_nothing(client, name, mutation, names):
    s = invalid_statement(mutation)
    marker = activity()
    good = statement(obj=marker)
    r = await client.post("/statements", json=[good, s])
    assert r.status_code == 400, (name, r.text)
    assert names in r.json()["message"]
    assert "statements[1]" in r.json()["message"]
    assert ids_of(await query(client, activity=marker["id"])) == []


async def test_batch_with_duplicate_ids_is_rejected(client):
    sid = str(uuid.uuid4())
    r = await client.post("/statements", json=[statement(id=sid), statement(id=sid)])
    assert r.status_code == 400
    assert (await client.get("/statements", params={"statementId": sid})).status_code == 404


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"{not json", "application/json"),
        (b"", "application/json"),
        (b'{"actor": 1}', "text/plain"),
        (b"[]", "application/json"),
        (b'"a string"', "application/json"),
        (b"\xff\xfe", "application/json"),
    ],
)
async def test_malformed_bodies_are_400(client, body, content_type):
    r = await client.post("/statements", content=body, headers={"Content-Type": content_type})
    assert r.status_code == 400, r.text
    assert r.json()["message"]


async def test_unknown_parameters_are_refused(client):
    r = await client.post("/statements", params={"foo": "bar"}, json=statement())
    assert r.status_code == 400 and "foo" in r.json()["message"]
    r = await client.get("/statements", params={"foo": "bar"})
    assert r.status_code == 400 and "foo" in r.json()["message"]


async def test_concurrent_batches_sharing_activities_all_succeed(client):
    shared = [activity() for _ in range(5)]

    def batch() -> list[dict[str, Any]]:
        return [
            statement(obj=shared[i % 5], context={"contextActivities": {"parent": shared[(i + 1) % 5]}})
            for i in range(50)
        ]

    results = await asyncio.gather(*(client.post("/statements", json=batch()) for _ in range(8)))
    assert [r.status_code for r in results] == [200] * 8
    found = await query(client, activity=shared[0]["id"], limit=1000)
    assert len(found["statements"]) == 8 * 10


# --- querying ---------------------------------------------------------------------------------


async def test_filters_by_agent_verb_activity_and_registration(client):
    kari, ola = agent(), agent()
    course, module = activity(), activity()
    reg = str(uuid.uuid4())
    ids = await post(
        client,
        [
            statement(actor=kari, verb=COMPLETED, obj=course, context={"registration": reg}),
            statement(
                actor=kari, verb=ATTEMPTED, obj=module, context={"contextActivities": {"parent": [course]}}
            ),
            statement(actor=ola, verb=COMPLETED, obj=course),
            statement(actor=agent(), verb=COMPLETED, obj=kari),
        ],
    )
    assert set(ids_of(await query(client, agent=agent_param(kari)))) == {ids[0], ids[1], ids[3]}
    by_both = await query(client, agent=agent_param(kari), verb=COMPLETED)
    assert set(ids_of(by_both)) == {ids[0], ids[3]}
    assert set(ids_of(await query(client, activity=course["id"]))) == {ids[0], ids[2]}
    related = await query(client, activity=course["id"], related_activities="true")
    assert set(ids_of(related)) == {ids[0], ids[1], ids[2]}
    assert ids_of(await query(client, registration=reg)) == [ids[0]]
    assert ids_of(await query(client, registration=reg.upper())) == [ids[0]]


async def test_agent_filter_matches_group_members_and_related_agents(client):
    kari, coach = agent(), agent()
    team = {"objectType": "Group", "name": "Team", "mbox": f"mailto:team-{unique()}@e.no"}
    ids = await post(
        client,
        [
            statement(actor={"objectType": "Group", "member": [kari, agent()]}),
            statement(actor=agent(), context={"instructor": kari}),
            statement(actor=coach, context={"team": team}),
            statement(
                actor=agent(),
                context={
                    "contextAgents": [
                        {
                            "objectType": "contextAgent",
                            "agent": kari,
                            "relevantTypes": ["https://e.no/types/mentor"],
                        }
                    ]
                },
            ),
        ],
    )
    assert ids_of(await query(client, agent=agent_param(kari))) == [ids[0]]
    related = await query(client, agent=agent_param(kari), related_agents="true")
    assert set(ids_of(related)) == {ids[0], ids[1], ids[3]}
    by_team = await query(client, agent=json.dumps(team), related_agents="true")
    assert ids_of(by_team) == [ids[2]]


async def test_related_activities_look_into_substatements(client):
    inner = activity()
    ids = await post(
        client,
        statement(
            obj={
                "objectType": "SubStatement",
                "actor": agent(),
                "verb": {"id": COMPLETED},
                "object": inner,
            }
        ),
    )
    assert ids_of(await query(client, activity=inner["id"])) == []
    assert ids_of(await query(client, activity=inner["id"], related_activities="true")) == ids


async def test_statement_refs_match_what_their_target_matches(client):
    kari, course = agent(), activity()
    [target] = await post(client, statement(actor=kari, obj=course))
    [ref] = await post(
        client,
        statement(
            actor=agent(),
            verb="http://adlnet.gov/expapi/verbs/confirmed",
            obj={"objectType": "StatementRef", "id": target},
        ),
    )
    assert set(ids_of(await query(client, agent=agent_param(kari)))) == {target, ref}
    assert set(ids_of(await query(client, activity=course["id"]))) == {target, ref}
    # A reference that arrives before its target is matched once the target is stored.
    late_target = str(uuid.uuid4())
    other = activity()
    [early_ref] = await post(client, statement(obj={"objectType": "StatementRef", "id": late_target}))
    await post(client, statement(id=late_target, obj=other))
    assert set(ids_of(await query(client, activity=other["id"]))) == {late_target, early_ref}


async def test_since_until_ascending_and_limit(client):
    course = activity()
    first = await post(client, [statement(obj=course) for _ in range(3)])
    await asyncio.sleep(0.05)
    middle = (await client.get("/statements", params={"statementId": first[-1]})).json()["stored"]
    await asyncio.sleep(0.05)
    second = await post(client, [statement(obj=course) for _ in range(2)])
    everything = await query(client, activity=course["id"])
    assert ids_of(everything) == list(reversed(first + second))
    assert ids_of(await query(client, activity=course["id"], ascending="true")) == first + second
    assert ids_of(await query(client, activity=course["id"], since=middle)) == second[::-1]
    assert ids_of(await query(client, activity=course["id"], until=middle)) == first[::-1]
    assert ids_of(await query(client, activity=course["id"], limit=2)) == second[::-1]


async def test_formats(client):
    a = agent()
    s = statement(actor=a, obj=activity(name={"en-US": "Fire", "nb": "Brann"}))
    [sid] = await post(client, s)
    ids = (await client.get("/statements", params={"statementId": sid, "format": "ids"})).json()
    assert ids["actor"] == {"objectType": "Agent", "mbox": a["mbox"]}
    assert ids["object"] == {"id": s["object"]["id"]}
    canonical = (
        await client.get(
            "/statements",
            params={"statementId": sid, "format": "canonical"},
            headers={"Accept-Language": "nb"},
        )
    ).json()
    assert canonical["object"]["definition"]["name"] == {"nb": "Brann"}
    exact = (await client.get("/statements", params={"statementId": sid})).json()
    assert exact["object"]["definition"]["name"] == {"en-US": "Fire", "nb": "Brann"}
    listed = await query(client, agent=agent_param(a), format="ids")
    assert listed["statements"][0]["actor"] == ids["actor"]


async def test_single_get_refuses_other_parameters(client):
    sid = str(uuid.uuid4())
    for params in (
        {"statementId": sid, "verb": COMPLETED},
        {"voidedStatementId": sid, "limit": 1},
        {"statementId": sid, "voidedStatementId": sid},
        {"statementId": "nope"},
    ):
        r = await client.get("/statements", params=params)
        assert r.status_code == 400, params
        assert "X-Experience-API-Consistent-Through" in r.headers
    r = await client.get("/statements", params={"statementId": sid})
    assert r.status_code == 404
    assert "X-Experience-API-Consistent-Through" in r.headers


async def test_consistent_through_is_recent_and_not_ahead(client, server):
    before = await database_now(server.database_url)
    r = await client.get("/statements", params={"limit": 1})
    through = parse_timestamp(r.headers["X-Experience-API-Consistent-Through"])
    assert through is not None
    assert before - timedelta(seconds=30) < through <= await database_now(server.database_url)


async def test_head_answers_like_get_without_body(client):
    [sid] = await post(client, statement())
    r = await client.head("/statements", params={"statementId": sid})
    assert r.status_code == 200 and r.content == b""
    assert "X-Experience-API-Consistent-Through" in r.headers
    r = await client.head("/about")
    assert r.status_code == 200 and r.content == b""


# --- paging -----------------------------------------------------------------------------------


async def test_more_walk_is_stable_while_statements_arrive(client):
    course = activity()
    stored = await post(client, [statement(obj=course) for _ in range(25)])
    seen: list[str] = []
    result = await query(client, activity=course["id"], limit=10)
    pages = 0
    while True:
        seen.extend(ids_of(result))
        pages += 1
        # New statements for the same activity arrive in the middle of the walk.
        await post(client, [statement(obj=course) for _ in range(3)])
        if not result["more"]:
            break
        assert result["more"].startswith("/xapi/statements?more=")
        r = await client.get(result["more"].removeprefix("/xapi"))
        assert r.status_code == 200
        result = r.json()
    assert pages == 3
    assert seen == list(reversed(stored))


async def test_more_token_is_refused_when_tampered_or_from_another_store(client, server):
    course = activity()
    await post(client, [statement(obj=course) for _ in range(3)])
    result = await query(client, activity=course["id"], limit=1)
    token = result["more"].split("more=", 1)[1]
    r = await client.get("/statements", params={"more": token[:-3] + "abc"})
    assert r.status_code == 400
    run_cli(server.database_url, "store", "create", f"kommune-{unique()}")
    stores = json.loads(run_cli(server.database_url, "store", "list", "--json").stdout)
    other = make_credential(server.database_url, store=stores[-1]["name"])
    async with httpx.AsyncClient(
        base_url=server.xapi, auth=other.auth, headers={"X-Experience-API-Version": "2.0.0"}
    ) as c:
        r = await c.get("/statements", params={"more": token})
        assert r.status_code == 400


# --- voiding ----------------------------------------------------------------------------------


async def test_voiding(client):
    course = activity()
    [target, keep] = await post(client, [statement(obj=course), statement(obj=course)])
    [void_id] = await post(client, voiding(target))
    assert (await client.get("/statements", params={"statementId": target})).status_code == 404
    r = await client.get("/statements", params={"voidedStatementId": target})
    assert r.status_code == 200 and r.json()["id"] == target
    assert (await client.get("/statements", params={"voidedStatementId": keep})).status_code == 404
    # The voided statement is gone from queries; the voiding statement matches in its place.
    assert ids_of(await query(client, activity=course["id"])) == [void_id, keep]
    # A voiding statement cannot itself be voided.
    await post(client, voiding(void_id))
    assert (await client.get("/statements", params={"statementId": void_id})).status_code == 200


async def test_voiding_before_the_target_arrives(client):
    target = str(uuid.uuid4())
    await post(client, voiding(target))
    await post(client, statement(id=target))
    assert (await client.get("/statements", params={"statementId": target})).status_code == 404
    r = await client.get("/statements", params={"voidedStatementId": target})
    assert r.status_code == 200


async def test_voiding_in_the_same_batch(client):
    target = str(uuid.uuid4())
    await post(client, [statement(id=target), voiding(target)])
    assert (await client.get("/statements", params={"statementId": target})).status_code == 404


# --- versions, auth, scopes ---------------------------------------------------------------------


async def test_version_header_is_required_and_echoed(server, credential):
    async with httpx.AsyncClient(base_url=server.xapi, auth=credential.auth) as c:
        r = await c.get("/statements")
        assert r.status_code == 400 and "X-Experience-API-Version" in r.json()["message"]
        for sent, answered in (("1.0", "1.0.3"), ("1.0.1", "1.0.3"), ("2.0.0", "2.0.0"), ("2.0.5", "2.0.0")):
            r = await c.get("/statements", params={"limit": 1}, headers={"X-Experience-API-Version": sent})
            assert r.status_code == 200 and r.headers["X-Experience-API-Version"] == answered
        r = await c.get("/statements", headers={"X-Experience-API-Version": "0.95"})
        assert r.status_code == 400
        about = await c.get("/about")
        assert about.status_code == 200
        assert about.json()["version"] == ["2.0.0", "1.0.3"]


async def test_statement_version_follows_request(client_v1, client):
    [v1] = await post(client_v1, statement())
    got = (await client.get("/statements", params={"statementId": v1})).json()
    assert got["version"] == "1.0.0"
    r = await client_v1.post("/statements", json=statement(version="2.0.0"))
    assert r.status_code == 400
    r = await client_v1.post(
        "/statements",
        json=statement(context={"contextAgents": [{"objectType": "contextAgent", "agent": agent()}]}),
    )
    assert r.status_code == 400 and "contextAgents" in r.json()["message"]


async def test_authentication_failures_are_401(server, credential):
    headers = {"X-Experience-API-Version": "2.0.0"}
    async with httpx.AsyncClient(base_url=server.xapi, headers=headers) as c:
        assert (await c.get("/statements")).status_code == 401
        r = await c.get("/statements", auth=(credential.key, "wrong"))
        assert r.status_code == 401 and "WWW-Authenticate" in r.headers
        assert (await c.get("/statements", auth=("nobody", "x"))).status_code == 401
        r = await c.get("/statements", headers={"Authorization": "Bearer abc"})
        assert r.status_code == 401


async def _client(server: Any, cred: Cred) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=server.xapi, auth=cred.auth, headers={"X-Experience-API-Version": "2.0.0"}
    )


async def test_scopes_limit_what_a_credential_may_do(server, client):
    writer = make_credential(server.database_url, scopes="statements/write")
    reader = make_credential(server.database_url, scopes="statements/read")
    mine = make_credential(server.database_url, scopes="statements/write,statements/read/mine")
    state_only = make_credential(server.database_url, scopes="state")
    course = activity()
    async with (
        await _client(server, writer) as w,
        await _client(server, reader) as r,
        await _client(server, mine) as m,
        await _client(server, state_only) as s,
    ):
        assert (await w.post("/statements", json=statement(obj=course))).status_code == 200
        assert (await w.get("/statements")).status_code == 403
        assert (await r.post("/statements", json=statement())).status_code == 403
        assert (await r.get("/statements", params={"activity": course["id"]})).status_code == 200
        assert (await s.get("/statements")).status_code == 403
        assert (await s.post("/statements", json=statement())).status_code == 403
        own = (await m.post("/statements", json=statement(obj=course))).json()
        seen = (await m.get("/statements", params={"activity": course["id"]})).json()
        assert ids_of(seen) == own
        everyone = await query(client, activity=course["id"])
        assert len(everyone["statements"]) == 2
        other_id = next(i for i in ids_of(everyone) if i not in own)
        assert (await m.get("/statements", params={"statementId": other_id})).status_code == 404


async def test_authority_is_the_credentials(server, client):
    cred = make_credential(server.database_url, label="Kursleverandør AS")
    async with await _client(server, cred) as c:
        forged = {"objectType": "Agent", "mbox": "mailto:boss@example.no"}
        [sid] = (await c.post("/statements", json=statement(authority=forged))).json()
    got = (await client.get("/statements", params={"statementId": sid})).json()
    assert got["authority"]["account"]["name"] == cred.key
    assert got["authority"]["name"] == "Kursleverandør AS"


async def test_stores_are_isolated(server, client):
    name = f"kommune-{unique()}"
    run_cli(server.database_url, "store", "create", name)
    other = make_credential(server.database_url, store=name)
    course = activity()
    [mine] = await post(client, statement(obj=course))
    async with await _client(server, other) as c:
        assert (await c.get("/statements", params={"statementId": mine})).status_code == 404
        assert ids_of((await c.get("/statements", params={"activity": course["id"]})).json()) == []
        [theirs] = (await c.post("/statements", json=statement(obj=course))).json()
        # The same statement id may exist in two stores without conflict.
        assert (
            await c.put("/statements", params={"statementId": mine}, json=statement(obj=course))
        ).status_code == 204
    assert ids_of(await query(client, activity=course["id"])) == [mine]
    assert (await client.get("/statements", params={"statementId": theirs})).status_code == 404


# --- syntax and transport ---------------------------------------------------------------------


async def test_alternate_request_syntax_in_1_0_3(server, credential):
    sid = str(uuid.uuid4())
    import base64

    auth = "Basic " + base64.b64encode(f"{credential.key}:{credential.secret}".encode()).decode()
    form = {
        "statementId": sid,
        "content": json.dumps(statement()),
        "X-Experience-API-Version": "1.0.3",
        "Authorization": auth,
        "Content-Type": "application/json",
    }
    async with httpx.AsyncClient(base_url=server.xapi) as c:
        r = await c.post("/statements", params={"method": "PUT"}, data=form)
        assert r.status_code == 204, r.text
        r = await c.post(
            "/statements",
            params={"method": "GET"},
            data={"statementId": sid, "X-Experience-API-Version": "1.0.3", "Authorization": auth},
        )
        assert r.status_code == 200 and r.json()["id"] == sid
        r = await c.post("/statements", params={"method": "PUT", "statementId": sid}, data=form)
        assert r.status_code == 400
        v2 = dict(form, **{"X-Experience-API-Version": "2.0.0"})
        r = await c.post("/statements", params={"method": "PUT"}, data=v2)
        assert r.status_code == 400 and "2.0" in r.json()["message"]


async def test_cors_preflight_and_exposed_headers(client):
    r = await client.options(
        "/statements",
        headers={
            "Origin": "https://course.example.no",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type,x-experience-api-version",
        },
    )
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] in ("*", "https://course.example.no")
    r = await client.get("/statements", params={"limit": 1}, headers={"Origin": "https://course.example.no"})
    assert "X-Experience-API-Consistent-Through" in r.headers["access-control-expose-headers"]


# --- group commit -----------------------------------------------------------------------------


def batch_metric(page: str, name: str) -> float:
    """A sample of the ingest batch-size histogram from a /metrics page."""
    value = metric(page, f"lrs_ingest_batch_size_{name}")
    assert value is not None, f"no lrs_ingest_batch_size_{name} in /metrics"
    return value


async def test_concurrent_single_statements_are_combined_and_all_stored(client, server):
    async with httpx.AsyncClient(base_url=server.url) as plain:
        before = (await plain.get("/metrics")).text
        course = activity()
        results = await asyncio.gather(
            *(client.post("/statements", json=statement(obj=course)) for _ in range(60))
        )
        after = (await plain.get("/metrics")).text
    assert [r.status_code for r in results] == [200] * 60
    ids = {r.json()[0] for r in results}
    found = await query(client, activity=course["id"], limit=100)
    assert set(ids_of(found)) == ids
    # 60 statements went in fewer writes than requests: some were combined.
    statements = batch_metric(after, "sum") - batch_metric(before, "sum")
    writes = batch_metric(after, "count") - batch_metric(before, "count")
    assert statements == 60 and writes < 60


async def test_a_conflict_among_concurrent_singles_fails_only_that_request(client):
    existing = str(uuid.uuid4())
    await post(client, statement(id=existing))
    course = activity()
    bodies = [statement(obj=course) for _ in range(20)]
    bodies.insert(7, statement(id=existing, verb=PASSED))  # same id, other content
    results = await asyncio.gather(*(client.post("/statements", json=b) for b in bodies))
    statuses = [r.status_code for r in results]
    assert statuses[7] == 409
    assert statuses[:7] + statuses[8:] == [200] * 20
    assert len(ids_of(await query(client, activity=course["id"]))) == 20


async def test_a_refused_single_leaves_no_trace_in_a_reference_sent_with_it(client):
    """A statement the database refuses and a StatementRef to it, sent at once: the reference
    is stored, but never as matching what the refused statement would have matched."""
    for _ in range(10):
        ghost = agent()
        target = statement(actor=ghost, verb="http://example.no/verbs/\u0000")
        target["id"] = str(uuid.uuid4())
        ref = statement(obj={"objectType": "StatementRef", "id": target["id"]})
        fillers = [statement() for _ in range(6)]
        results = await asyncio.gather(
            *(client.post("/statements", json=b) for b in (*fillers[:3], target, ref, *fillers[3:]))
        )
        assert [r.status_code for r in results] == [200] * 3 + [400, 200] + [200] * 3
        assert ids_of(await query(client, agent=agent_param(ghost))) == []
        assert ids_of(await query(client, agent=agent_param(ghost), related_agents="true")) == []


async def test_a_server_may_serve_1_0_3_only(server_1_0_3, credential):
    async with httpx.AsyncClient(base_url=server_1_0_3.xapi, auth=credential.auth) as c:
        about = await c.get("/about")
        assert about.json()["version"] == ["1.0.3"]
        assert about.headers["X-Experience-API-Version"] == "1.0.3"
        # No version named: refused, and answered as the one version served.
        r = await c.get("/statements")
        assert r.status_code == 400 and r.headers["X-Experience-API-Version"] == "1.0.3"
        r = await c.get("/statements", headers={"X-Experience-API-Version": "2.0.0"})
        assert r.status_code == 400 and "not served" in r.json()["message"]
        r = await c.post("/statements", json=statement(), headers={"X-Experience-API-Version": "1.0.3"})
        assert r.status_code == 200, r.text
        [sid] = r.json()
        got = await c.get(
            "/statements", params={"statementId": sid}, headers={"X-Experience-API-Version": "1.0.3"}
        )
        assert got.json()["version"] == "1.0.0"
