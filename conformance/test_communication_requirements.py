"""xAPI Communication requirements (resources, headers, syntax), one test per requirement id."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid

import httpx
import pytest
from tests.factories import activity, agent, statement, unique


async def test_XAPI_00109_00110_00114_statement_result_and_more(client):
    course = activity()
    await client.post("/statements", json=[statement(obj=course) for _ in range(3)])
    first = (await client.get("/statements", params={"activity": course["id"], "limit": 2})).json()
    assert isinstance(first["statements"], list) and len(first["statements"]) == 2
    assert first["more"]
    last = (await client.get(first["more"].removeprefix("/xapi"))).json()
    assert len(last["statements"]) == 1 and last["more"] == ""


async def test_XAPI_00125_00126_head_is_get_without_body(client):
    for path, params in (
        ("/statements", {"limit": "1"}),
        ("/about", {}),
        ("/activities", {"activityId": activity()["id"]}),
    ):
        get = await client.get(path, params=params)
        head = await client.head(path, params=params)
        assert head.status_code == get.status_code == 200
        assert head.content == b""
        assert head.headers["content-type"] == get.headers["content-type"]


async def test_XAPI_00127_statements_need_json_or_multipart(client):
    r = await client.post(
        "/statements", content=json.dumps(statement()), headers={"Content-Type": "text/plain"}
    )
    assert r.status_code == 400


def _multipart(s: dict, content: bytes, headers: str) -> bytes:
    b = "bnd"
    return (
        (f"--{b}\r\nContent-Type: application/json\r\n\r\n{json.dumps(s)}\r\n--{b}\r\n{headers}\r\n").encode()
        + content
        + f"\r\n--{b}--\r\n".encode()
    )


def _meta(content: bytes) -> dict:
    return {
        "usageType": "http://e.no/u",
        "display": {"en": "a"},
        "contentType": "text/plain",
        "length": len(content),
        "sha2": hashlib.sha256(content).hexdigest(),
    }


@pytest.mark.parametrize(
    ("name", "headers"),
    [
        ("XAPI-00133 no hash header", "Content-Type: text/plain\r\nContent-Transfer-Encoding: binary\r\n"),
        (
            "XAPI-00135 not binary",
            "Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n"
            "X-Experience-API-Hash: {sha}\r\n",
        ),
        (
            "XAPI-00134 hash mismatch",
            "Content-Type: text/plain\r\nContent-Transfer-Encoding: binary\r\n"
            "X-Experience-API-Hash: " + "0" * 64 + "\r\n",
        ),
    ],
)
async def test_XAPI_00128_to_00135_multipart_parts(client, name, headers):
    content = b"attached text"
    s = statement(attachments=[_meta(content)])
    body = _multipart(s, content, headers.format(sha=hashlib.sha256(content).hexdigest()))
    r = await client.post(
        "/statements", content=body, headers={"Content-Type": "multipart/mixed; boundary=bnd"}
    )
    assert r.status_code == 400, name


async def test_XAPI_00129_json_with_attachment_data_missing(client):
    assert (await client.post("/statements", json=statement(attachments=[_meta(b"x")]))).status_code == 400


async def test_XAPI_00131_boundary_required(client):
    r = await client.post("/statements", content=b"{}", headers={"Content-Type": "multipart/mixed"})
    assert r.status_code == 400


async def test_XAPI_00139_00230_00245_00282_00311_00315_resources_exist(client):
    a = json.dumps(agent())
    for path, params in (
        ("/statements", {}),
        ("/activities/state", {"activityId": activity()["id"], "agent": a}),
        ("/agents", {"agent": a}),
        ("/agents/profile", {"agent": a}),
        ("/activities/profile", {"activityId": activity()["id"]}),
        ("/about", {}),
    ):
        assert (await client.get(path, params=params)).status_code == 200, path


async def test_XAPI_00148_00336_alternate_syntax(client_v1, credential):
    auth = "Basic " + base64.b64encode(f"{credential.key}:{credential.secret}".encode()).decode()
    r = await client_v1.post(
        "/statements", params={"method": "GET"}, data={"limit": "1", "Authorization": auth}
    )
    assert r.status_code == 200 and "statements" in r.json()


async def test_XAPI_00149_empty_result_is_200(client):
    r = await client.get("/statements", params={"activity": activity()["id"]})
    assert r.status_code == 200 and r.json() == {"statements": [], "more": ""}


async def test_XAPI_00161_00165_json_without_attachments(client):
    r = await client.get("/statements", params={"limit": 1, "attachments": "false"})
    assert r.headers["content-type"] == "application/json"


async def test_XAPI_00164_results_match_the_filter(client):
    kari, course = agent(), activity()
    await client.post("/statements", json=[statement(actor=kari, obj=course), statement()])
    result = (await client.get("/statements", params={"agent": json.dumps(kari)})).json()
    assert [s["actor"]["mbox"] for s in result["statements"]] == [kari["mbox"]]


async def test_XAPI_00168_to_00172_formats(client):
    s = statement(obj=activity(name={"en-US": "Fire", "nb": "Brann"}))
    [sid] = (await client.post("/statements", json=s)).json()

    async def get(**params):
        return (
            await client.get(
                "/statements", params={"statementId": sid, **params}, headers={"Accept-Language": "nb"}
            )
        ).json()

    assert (await get())["object"]["definition"]["name"] == {"en-US": "Fire", "nb": "Brann"}
    assert (await get(format="exact"))["object"] == (await get())["object"]
    assert (await get(format="ids"))["object"] == {"id": s["object"]["id"]}
    assert (await get(format="canonical"))["object"]["definition"]["name"] == {"nb": "Brann"}


async def test_XAPI_00183_00184_document_merge(client):
    params = {"activityId": activity()["id"], "agent": json.dumps(agent()), "stateId": unique()}
    await client.post("/activities/state", params=params, json={"a": {"x": 1}, "b": 1})
    await client.post("/activities/state", params=params, json={"a": {"y": 2}, "c": 3})
    got = (await client.get("/activities/state", params=params)).json()
    assert got == {"a": {"y": 2}, "b": 1, "c": 3}


async def test_XAPI_00229_00278_post_merges_only_json(client):
    params = {"agent": json.dumps(agent()), "profileId": unique()}
    await client.put(
        "/agents/profile",
        params=params,
        content=b"text",
        headers={"Content-Type": "text/plain", "If-None-Match": "*"},
    )
    r = await client.post("/agents/profile", params=params, json={"a": 1})
    assert r.status_code == 400


async def test_XAPI_00249_agents_parameter_must_be_an_agent(client):
    for value in ("true", "{}", '{"mbox": "kari@example.no"}'):
        assert (await client.get("/agents", params={"agent": value})).status_code == 400


async def test_XAPI_00254_activity_collects_all_definitions(client):
    course = activity()
    await client.post(
        "/statements",
        json=[
            statement(obj=dict(course, definition={"description": {"en-US": "Fire safety"}})),
            statement(obj=dict(course, definition={"description": {"nb": "Brannvern"}})),
        ],
    )
    got = (await client.get("/activities", params={"activityId": course["id"]})).json()
    assert got["definition"]["description"] == {"en-US": "Fire safety", "nb": "Brannvern"}


async def test_XAPI_00322_etags(client):
    params = {"activityId": activity()["id"], "profileId": unique()}
    body = b'{"v": 1}'
    await client.put(
        "/activities/profile",
        params=params,
        content=body,
        headers={"Content-Type": "application/json", "If-None-Match": "*"},
    )
    r = await client.get("/activities/profile", params=params)
    assert r.headers["etag"] == '"' + hashlib.sha1(body).hexdigest() + '"'
    r = await client.put(
        "/activities/profile", params=params, json={"v": 2}, headers={"If-Match": '"not-it"'}
    )
    assert r.status_code == 412


async def test_XAPI_00324_00325_unknown_or_miscased_parameters(client):
    for params in ({"foo": "1"}, {"Limit": "1"}, {"VERB": "http://e.no/v"}):
        assert (await client.get("/statements", params=params)).status_code == 400


async def test_XAPI_00326_rejected_batch_stores_nothing(client):
    good = str(uuid.uuid4())
    r = await client.post("/statements", json=[statement(id=good), statement(verb="bad")])
    assert r.status_code == 400
    assert (await client.get("/statements", params={"statementId": good})).status_code == 404


async def test_XAPI_00321_00331_version_header(server, credential):
    async with httpx.AsyncClient(base_url=server.xapi, auth=credential.auth) as c:
        r = await c.post("/statements", json=statement())
        assert r.status_code == 400 and r.headers["X-Experience-API-Version"]
        r = await c.get("/about")
        assert r.status_code == 200


async def test_XAPI_00334_00335_basic_authentication(server, credential):
    headers = {"X-Experience-API-Version": "1.0.3"}
    async with httpx.AsyncClient(base_url=server.xapi, headers=headers) as c:
        assert (await c.post("/statements", json=statement())).status_code == 401
        r = await c.post("/statements", json=statement(), auth=(credential.key, "nope"))
        assert r.status_code == 401
        r = await c.post("/statements", json=statement(), auth=credential.auth)
        assert r.status_code == 200
