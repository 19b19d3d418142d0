"""State, Activity Profile, Agent Profile, Agents and Activities resources over real HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.factories import activity, agent, statement, unique
from tests.harness import Server, database_now, make_credential, running_server

STATE = "/activities/state"
ACTIVITY_PROFILE = "/activities/profile"
AGENT_PROFILE = "/agents/profile"


def state_params(**extra: Any) -> dict[str, str]:
    return {"activityId": activity()["id"], "agent": json.dumps(agent()), "stateId": unique(), **extra}


def owner(params: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in params.items() if k not in ("stateId", "profileId")}


@pytest.fixture(scope="module")
def second_server(database_url: str, server: Server) -> Iterator[Server]:
    """Another server process on the same database, with a small document limit."""
    with running_server(database_url, max_document_bytes="2048") as srv:
        yield srv


# --- State -------------------------------------------------------------------------------------


async def test_state_round_trip_keeps_bytes_and_type(client):
    params = state_params()
    blob = bytes(range(256)) * 4
    r = await client.put(
        STATE, params=params, content=blob, headers={"Content-Type": "application/octet-stream"}
    )
    assert r.status_code == 204, r.text
    r = await client.get(STATE, params=params)
    assert r.status_code == 200
    assert r.content == blob
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["etag"] == '"' + hashlib.sha1(blob).hexdigest() + '"'
    assert "last-modified" in r.headers


async def test_state_post_merges_json_objects_one_level_deep(client):
    params = state_params()
    await client.post(STATE, params=params, json={"a": 1, "nested": {"x": 1, "y": 2}})
    r = await client.post(STATE, params=params, json={"b": 2, "nested": {"z": 3}})
    assert r.status_code == 204
    got = (await client.get(STATE, params=params)).json()
    assert got == {"a": 1, "b": 2, "nested": {"z": 3}}


@pytest.mark.parametrize(
    ("first", "first_type", "second", "second_type"),
    [
        (b"plain text", "text/plain", b'{"a": 1}', "application/json"),
        (b'{"a": 1}', "application/json", b"plain text", "text/plain"),
        (b"[1, 2]", "application/json", b'{"a": 1}', "application/json"),
        (b'{"a": 1}', "application/json", b"[1, 2]", "application/json"),
    ],
)
async def test_state_post_refuses_merging_non_objects(client, first, first_type, second, second_type):
    params = state_params()
    await client.put(STATE, params=params, content=first, headers={"Content-Type": first_type})
    r = await client.post(STATE, params=params, content=second, headers={"Content-Type": second_type})
    assert r.status_code == 400
    assert (await client.get(STATE, params=params)).content == first


async def test_invalid_json_document_is_400(client):
    r = await client.post(
        STATE, params=state_params(), content=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 400 and "JSON" in r.json()["message"]


async def test_state_ids_since_and_delete_all(client, server):
    params = state_params()
    base = owner(params)
    reg = "6fbd6b6c-6b1f-4bb2-a45c-4bca1fb6c2d5"
    await client.put(STATE, params={**base, "stateId": "one"}, json={"n": 1})
    middle = (await database_now(server.database_url)).isoformat()
    await client.put(STATE, params={**base, "stateId": "two"}, json={"n": 2})
    await client.put(STATE, params={**base, "stateId": "three", "registration": reg}, json={})
    assert (await client.get(STATE, params=base)).json() == ["one", "two"]
    assert (await client.get(STATE, params={**base, "since": middle})).json() == ["two"]
    assert (await client.get(STATE, params={**base, "registration": reg})).json() == ["three"]
    assert (await client.delete(STATE, params=base)).status_code == 204
    assert (await client.get(STATE, params=base)).json() == []
    assert (await client.get(STATE, params={**base, "registration": reg})).json() == ["three"]


async def test_deleting_one_state_document(client):
    params = state_params()
    await client.put(STATE, params=params, json={"a": 1})
    assert (await client.delete(STATE, params=params)).status_code == 204
    assert (await client.get(STATE, params=params)).status_code == 404


@pytest.mark.parametrize(
    ("change", "names"),
    [
        (lambda p: p.pop("activityId"), "activityId"),
        (lambda p: p.pop("agent"), "agent"),
        (lambda p: p.update(agent="not json"), "agent"),
        (lambda p: p.update(agent='{"name": "no ifi"}'), "agent"),
        (lambda p: p.update(activityId="not an iri"), "activityId"),
        (lambda p: p.update(registration="nope"), "registration"),
        (lambda p: p.update(since="2026-01-01T00:00:00Z"), "since"),
        (lambda p: p.update(colour="blue"), "colour"),
    ],
)
async def test_bad_state_parameters_are_400(client, change, names):
    params = state_params()
    change(params)
    r = await client.put(STATE, params=params, json={"a": 1})
    assert r.status_code == 400, r.text
    assert names in r.json()["message"]


async def test_state_put_without_precondition_differs_by_version(client, client_v1):
    params = state_params()
    await client.put(STATE, params=params, json={"v": 1})
    assert (await client_v1.put(STATE, params=params, json={"v": 2})).status_code == 204
    r = await client.put(STATE, params=params, json={"v": 3})
    assert r.status_code == 409 and "If-Match" in r.json()["message"]
    assert (await client.get(STATE, params=params)).json() == {"v": 2}


# --- profiles and concurrency ----------------------------------------------------------------


def profile_cases() -> list[tuple[str, dict[str, str]]]:
    return [
        (ACTIVITY_PROFILE, {"activityId": activity()["id"], "profileId": unique()}),
        (AGENT_PROFILE, {"agent": json.dumps(agent()), "profileId": unique()}),
    ]


@pytest.mark.parametrize(("path", "params"), profile_cases(), ids=["activity", "agent"])
async def test_concurrent_creates_of_one_profile_document_let_exactly_one_in(client, path, params):
    bodies = [{"writer": n} for n in range(12)]
    results = await asyncio.gather(
        *(client.put(path, params=params, json=b, headers={"If-None-Match": "*"}) for b in bodies)
    )
    statuses = sorted(r.status_code for r in results)
    assert statuses == [204] + [412] * 11
    winner = next(b for b, r in zip(bodies, results, strict=True) if r.status_code == 204)
    assert (await client.get(path, params=params)).json() == winner


@pytest.mark.parametrize(("path", "params"), profile_cases(), ids=["activity", "agent"])
@pytest.mark.parametrize("api", ["client", "client_v1"])
async def test_profile_preconditions(request, api, path, params):
    c: httpx.AsyncClient = request.getfixturevalue(api)
    r = await c.put(path, params=params, json={"v": 0})
    assert r.status_code == 400  # a profile PUT must carry a precondition
    r = await c.put(path, params=params, json={"v": 1}, headers={"If-None-Match": "*"})
    assert r.status_code == 204
    tag = (await c.get(path, params=params)).headers["etag"]
    assert tag.startswith('"') and tag.endswith('"')
    r = await c.put(path, params=params, json={"v": 2}, headers={"If-None-Match": "*"})
    assert r.status_code == 412
    r = await c.put(path, params=params, json={"v": 2})
    assert r.status_code == 409
    r = await c.put(path, params=params, json={"v": 2}, headers={"If-Match": '"0000"'})
    assert r.status_code == 412
    r = await c.post(path, params=params, json={"w": 1}, headers={"If-Match": '"0000"'})
    assert r.status_code == 412
    r = await c.delete(path, params=params, headers={"If-Match": '"0000"'})
    assert r.status_code == 412
    assert (await c.get(path, params=params)).json() == {"v": 1}
    r = await c.put(path, params=params, json={"v": 2}, headers={"If-Match": tag})
    assert r.status_code == 204
    tag2 = (await c.get(path, params=params)).headers["etag"]
    r = await c.post(path, params=params, json={"w": 1}, headers={"If-Match": tag2})
    assert r.status_code == 204
    assert (await c.get(path, params=params)).json() == {"v": 2, "w": 1}
    ids = (await c.get(path, params={k: v for k, v in params.items() if k != "profileId"})).json()
    assert ids == [params["profileId"]]
    r = await c.delete(path, params=params, headers={"If-Match": '"0000"'})
    assert r.status_code == 412
    assert (await c.delete(path, params=params)).status_code == 204
    assert (await c.get(path, params=params)).status_code == 404
    r = await c.put(path, params=params, json={}, headers={"If-Match": tag2})
    assert r.status_code == 412


async def test_profile_delete_needs_id(client):
    params = {"activityId": activity()["id"]}
    r = await client.delete(ACTIVITY_PROFILE, params=params)
    assert r.status_code == 400 and "profileId" in r.json()["message"]


async def test_two_processes_never_lose_an_update(server, second_server, credential):
    """Read-modify-write with If-Match from two server processes at once: every 204 counts."""
    params = {"activityId": activity()["id"], "profileId": unique()}
    headers = {"X-Experience-API-Version": "2.0.0"}
    clients = [
        httpx.AsyncClient(base_url=s.xapi, auth=credential.auth, headers=headers)
        for s in (server, second_server)
    ]
    await clients[0].put(ACTIVITY_PROFILE, params=params, json={"count": 0}, headers={"If-None-Match": "*"})
    successes = 0

    async def worker(c: httpx.AsyncClient) -> None:
        nonlocal successes
        for _ in range(25):
            r = await c.get(ACTIVITY_PROFILE, params=params)
            doc, tag = r.json(), r.headers["etag"]
            r = await c.put(
                ACTIVITY_PROFILE, params=params, json={"count": doc["count"] + 1}, headers={"If-Match": tag}
            )
            assert r.status_code in (204, 412), r.text
            successes += r.status_code == 204

    try:
        await asyncio.gather(*(worker(clients[i % 2]) for i in range(6)))
        final = (await clients[1].get(ACTIVITY_PROFILE, params=params)).json()
    finally:
        for c in clients:
            await c.aclose()
    assert successes > 0
    assert final["count"] == successes


async def test_document_size_limit(second_server, credential):
    async with httpx.AsyncClient(
        base_url=second_server.xapi, auth=credential.auth, headers={"X-Experience-API-Version": "2.0.0"}
    ) as c:
        params = state_params()
        r = await c.put(STATE, params=params, content=b"x" * 4096, headers={"Content-Type": "text/plain"})
        assert r.status_code == 413
        assert (await c.get(STATE, params=params)).status_code == 404


async def test_document_scopes(server):
    state_cred = make_credential(server.database_url, scopes="state")
    profile_cred = make_credential(server.database_url, scopes="profile")
    reader = make_credential(server.database_url, scopes="all/read")
    headers = {"X-Experience-API-Version": "2.0.0"}
    params = state_params()
    prof = {"activityId": activity()["id"], "profileId": unique()}
    async with httpx.AsyncClient(base_url=server.xapi, headers=headers) as c:
        assert (await c.put(STATE, params=params, json={}, auth=state_cred.auth)).status_code == 204
        r = await c.put(
            ACTIVITY_PROFILE, params=prof, json={}, auth=state_cred.auth, headers={"If-None-Match": "*"}
        )
        assert r.status_code == 403
        assert (await c.get(STATE, params=params, auth=profile_cred.auth)).status_code == 403
        r = await c.put(
            ACTIVITY_PROFILE, params=prof, json={}, auth=profile_cred.auth, headers={"If-None-Match": "*"}
        )
        assert r.status_code == 204
        assert (await c.get(STATE, params=params, auth=reader.auth)).status_code == 200
        assert (await c.put(STATE, params=params, json={}, auth=reader.auth)).status_code == 403


# --- Agents and Activities ----------------------------------------------------------------------


async def test_agents_resource_returns_person(client):
    kari = agent()
    await client.post(
        "/statements", json=[statement(actor=kari), statement(actor=dict(kari, name="Kari N."))]
    )
    r = await client.get("/agents", params={"agent": json.dumps({"mbox": kari["mbox"]})})
    assert r.status_code == 200
    assert r.json() == {
        "objectType": "Person",
        "name": sorted([kari["name"], "Kari N."]),
        "mbox": [kari["mbox"]],
    }
    unknown = {"account": {"homePage": "https://e.no", "name": unique()}}
    r = await client.get("/agents", params={"agent": json.dumps(unknown)})
    assert r.json() == {"objectType": "Person", "account": [unknown["account"]]}
    assert (await client.get("/agents")).status_code == 400
    assert (await client.get("/agents", params={"agent": "{"})).status_code == 400


async def test_activities_merge_definitions_from_statements(client, server):
    course = activity()
    await client.post(
        "/statements",
        json=statement(
            obj=dict(
                course,
                definition={
                    "name": {"en-US": "Fire safety"},
                    "type": "http://adlnet.gov/expapi/activities/course",
                },
            )
        ),
    )
    await client.post(
        "/statements",
        json=statement(
            obj=dict(course, definition={"name": {"nb": "Brannvern"}, "description": {"nb": "Grunnkurs"}})
        ),
    )
    r = await client.get("/activities", params={"activityId": course["id"]})
    assert r.status_code == 200
    assert r.json() == {
        "objectType": "Activity",
        "id": course["id"],
        "definition": {
            "name": {"en-US": "Fire safety", "nb": "Brannvern"},
            "description": {"nb": "Grunnkurs"},
            "type": "http://adlnet.gov/expapi/activities/course",
        },
    }
    # Without the define scope, statements do not change the canonical definition.
    writer = make_credential(server.database_url, scopes="statements/write")
    async with httpx.AsyncClient(
        base_url=server.xapi, auth=writer.auth, headers={"X-Experience-API-Version": "2.0.0"}
    ) as c:
        r = await c.post(
            "/statements", json=statement(obj=dict(course, definition={"name": {"en-US": "Renamed"}}))
        )
        assert r.status_code == 200
    got = (await client.get("/activities", params={"activityId": course["id"]})).json()
    assert got["definition"]["name"]["en-US"] == "Fire safety"
    # The canonical format serves the canonical definition, in one language.
    [sid] = r.json()
    canonical = (
        await client.get(
            "/statements",
            params={"statementId": sid, "format": "canonical"},
            headers={"Accept-Language": "nb"},
        )
    ).json()
    assert canonical["object"]["definition"]["name"] == {"nb": "Brannvern"}


async def test_unknown_activity_is_still_an_activity(client):
    iri = activity()["id"]
    r = await client.get("/activities", params={"activityId": iri})
    assert r.json() == {"objectType": "Activity", "id": iri}
    assert (await client.get("/activities")).status_code == 400
    assert (await client.get("/activities", params={"activityId": "nope"})).status_code == 400


async def test_documents_are_isolated_between_stores(client, server):
    from tests.harness import run_cli

    name = f"kommune-{unique()}"
    run_cli(server.database_url, "store", "create", name)
    other = make_credential(server.database_url, store=name)
    params = state_params()
    await client.put(STATE, params=params, json={"secret": "kari"})
    async with httpx.AsyncClient(
        base_url=server.xapi, auth=other.auth, headers={"X-Experience-API-Version": "2.0.0"}
    ) as c:
        assert (await c.get(STATE, params=params)).status_code == 404
        assert (await c.get(STATE, params=owner(params))).json() == []
        assert (await c.delete(STATE, params=owner(params))).status_code == 204
    assert (await client.get(STATE, params=params)).json() == {"secret": "kari"}
