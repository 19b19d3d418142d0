"""Hostile and unusual input found by outside checks: each is a clear 4xx, never a 500, and
stores nothing; limits hold before a body is read; a credential sees only what it may."""

from __future__ import annotations

import base64
import json
import random
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.factories import activity, agent, statement
from tests.harness import Server, make_credential, rollups_folded, running_server
from tests.test_attachments_api import attachment_meta, multipart, parse_multipart, part_headers, send

STATE = "/activities/state"


def assert_refused(r: httpx.Response, status: int, *words: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["status"] == status
    for word in words:
        assert word in body["message"], body["message"]


async def stored_for(client: httpx.AsyncClient, who: dict[str, Any]) -> list[dict[str, Any]]:
    r = await client.get("/statements", params={"agent": json.dumps({"mbox": who["mbox"]})})
    assert r.status_code == 200, r.text
    statements: list[dict[str, Any]] = r.json()["statements"]
    return statements


def astral(n: int, seed: int) -> str:
    """n characters outside the Basic Multilingual Plane (4 bytes each in UTF-8), varied so
    that PostgreSQL cannot compress them below its index row limit."""
    rnd = random.Random(seed)
    return "".join(chr(rnd.randint(0x10000, 0x3FFFF)) for _ in range(n))


# --- timestamps -------------------------------------------------------------------------------

BAD_INSTANTS = [
    "2026-03-02T10:00:00+24:00",
    "2026-03-02T10:00:00+99:99",
    "2026-03-02T10:00:00-24:00",
    "0001-01-01T00:30:00+01:00",  # before year 1 in UTC
    "9999-12-31T23:30:00-01:00",  # after year 9999 in UTC
]


@pytest.mark.parametrize("value", BAD_INSTANTS)
async def test_out_of_range_timestamps_are_400_and_store_nothing(client, server, credential, value):
    who = agent()
    r = await client.post("/statements", json=statement(actor=who, timestamp=value))
    assert_refused(r, 400, "statement.timestamp")
    assert await stored_for(client, who) == []
    for name in ("since", "until"):
        assert_refused(await client.get("/statements", params={name: value}), 400, name)
    async with httpx.AsyncClient(base_url=server.url, auth=credential.auth) as c:
        for name in ("since", "until"):
            r = await c.get("/analytics/engagement", params={name: value})
            assert_refused(r, 400, name)


@pytest.mark.parametrize(
    ("params", "word"),
    [
        ({"since": "0001-01-01T00:00:00Z", "tz": "America/New_York"}, "since"),
        ({"since": "9999-12-31T00:00:00Z", "until": "9999-12-31T23:00:00Z", "tz": "Asia/Tokyo"}, "since"),
        ({"until": "9999-12-31T23:00:00Z"}, "until"),
    ],
)
async def test_analytics_windows_at_the_calendars_ends_are_400(server, credential, params, word):
    async with httpx.AsyncClient(base_url=server.url, auth=credential.auth) as c:
        assert_refused(await c.get("/analytics/engagement", params=params), 400, word)


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z"])
async def test_first_and_last_instants_are_stored_and_left_out_of_analytics(
    client, server, credential, value
):
    """Valid timestamps, so stored as sent; analytics (which count by local hour) pass them by."""
    who = agent()
    course = activity()
    r = await client.post("/statements", json=statement(actor=who, obj=course, timestamp=value))
    assert r.status_code == 200, r.text
    [got] = await stored_for(client, who)
    assert got["timestamp"] == value
    await rollups_folded(server.database_url)
    async with httpx.AsyncClient(base_url=server.url, auth=credential.auth) as c:
        r = await c.get("/analytics/completion", params={"activity": course["id"]})
    assert r.status_code == 200, r.text
    assert r.json()["groups"][0]["learners_started"] == 0


# --- JSON nesting and long keys ---------------------------------------------------------------

DEEP = b"[" * 990 + b"123456789012345678901234567890" + b"]" * 990


async def test_deeply_nested_big_integer_is_400_as_statement_and_as_document(client):
    r = await client.post("/statements", content=DEEP, headers={"Content-Type": "application/json"})
    assert_refused(r, 400, "64-bit")
    params = {"activityId": activity()["id"], "agent": json.dumps(agent()), "stateId": "deep"}
    r = await client.put(STATE, params=params, content=DEEP, headers={"Content-Type": "application/json"})
    assert_refused(r, 400, "64-bit")
    assert (await client.get(STATE, params=params)).status_code == 404


async def test_deeply_nested_small_integer_document_is_kept(client):
    body = b"[" * 990 + b"42" + b"]" * 990
    params = {"activityId": activity()["id"], "agent": json.dumps(agent()), "stateId": "deep"}
    r = await client.put(STATE, params=params, content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 204, r.text
    assert (await client.get(STATE, params=params)).content == body


async def test_document_ids_are_limited_in_bytes(client):
    params = {"activityId": activity()["id"], "agent": json.dumps(agent())}
    r = await client.put(STATE, params={**params, "stateId": astral(1000, 1)}, content=b"x")
    assert_refused(r, 400, "stateId", "bytes")
    fits = astral(250, 2)  # 1,000 bytes
    r = await client.put(STATE, params={**params, "stateId": fits}, content=b"kept")
    assert r.status_code == 204, r.text
    assert (await client.get(STATE, params={**params, "stateId": fits})).content == b"kept"
    assert (await client.get(STATE, params=params)).json() == [fits]


async def test_long_non_ascii_iri_and_mbox_are_stored_found_and_counted(client, server, credential):
    who = {"mbox": f"mailto:{astral(480, 3)}@example.no"}
    course = {"id": f"https://kurs.example.no/{astral(480, 4)}"}
    r = await client.post("/statements", json=statement(actor=who, obj=course))
    assert r.status_code == 200, r.text
    [sid] = r.json()
    for params in ({"agent": json.dumps(who)}, {"activity": course["id"]}):
        got = (await client.get("/statements", params=params)).json()["statements"]
        assert [s["id"] for s in got] == [sid]
    await rollups_folded(server.database_url)
    async with httpx.AsyncClient(base_url=server.url, auth=credential.auth) as c:
        r = await c.get("/analytics/completion", params={"activity": course["id"]})
    assert r.status_code == 200, r.text
    # Counted: one learner, below the default store's minimum group, so suppressed.
    assert r.json()["groups"] == [] and r.json()["suppressed_groups"] == 1


# --- the 1.0.3 alternate request syntax --------------------------------------------------------


def _form(**fields: str) -> bytes:
    return "&".join(f"{quote(k)}={v}" for k, v in fields.items()).encode()


async def test_form_fields_that_no_header_can_carry_are_400(server, credential):
    auth = "Basic%20" + base64.b64encode(f"{credential.key}:{credential.secret}".encode()).decode()
    forms = [
        ("Authorization", _form(Authorization="Basic%20%E2%82%AC", **{"X-Experience-API-Version": "1.0.3"})),
        ("Content-Type", _form(**{"Content-Type": "%E2%82%AC", "X-Experience-API-Version": "1.0.3"})),
        ("If-Match", _form(**{"If-Match": "%22a%22%0D%0AX-Injected%3A%201"})),
    ]
    async with httpx.AsyncClient(base_url=server.xapi) as c:
        for field, form in forms:
            r = await c.post(
                "/statements",
                params={"method": "GET"},
                content=form + b"&Authorization=" + auth.encode() if field != "Authorization" else form,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            assert_refused(r, 400, field)


async def test_a_form_content_type_with_a_line_break_is_refused_and_not_stored(server, credential, client):
    auth = "Basic%20" + base64.b64encode(f"{credential.key}:{credential.secret}".encode()).decode()
    params = {"activityId": activity()["id"], "agent": json.dumps(agent()), "stateId": "injected"}
    form = _form(
        Authorization=auth,
        content="hello",
        **{"Content-Type": "text%2Fplain%0D%0AX-Injected%3A%201", "X-Experience-API-Version": "1.0.3"},
        **{k: quote(v) for k, v in params.items()},
    )
    async with httpx.AsyncClient(base_url=server.xapi) as c:
        r = await c.post(
            STATE,
            params={"method": "PUT"},
            content=form,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    assert_refused(r, 400, "Content-Type")
    assert (await client.get(STATE, params=params)).status_code == 404


async def test_attachment_content_type_with_a_line_break_is_400(client):
    data = b"certificate"
    meta = attachment_meta(data, content_type="text/plain\r\n\r\n;x")
    who = agent()
    part = (data, part_headers(data, "text/plain"))
    r = await send(client, multipart(statement(actor=who, attachments=[meta]), [part]))
    assert_refused(r, 400, "contentType")
    assert await stored_for(client, who) == []


# --- limits and authentication ----------------------------------------------------------------


@pytest.fixture(scope="module")
def small_body_server(database_url: str, server: Server) -> Iterator[Server]:
    with running_server(database_url, max_body_bytes="4096") as srv:
        yield srv


def _raw_request(url: str, request: bytes) -> bytes:
    """Send request bytes and read the answer, without ever sending a body."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        return answer


@pytest.mark.parametrize("path", ["/admin/stores", "/xapi/statements", "/analytics/completion"])
def test_body_limit_is_checked_on_every_route_before_the_body_is_read(small_body_server, path):
    # The client announces 300 MiB and sends none of it: an answer at all shows the server
    # decided from the header; a server that read the body would wait until the timeout.
    request = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {300 * 1024 * 1024}\r\n\r\n"
    ).encode()
    answer = _raw_request(small_body_server.url, request)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]


@pytest.mark.parametrize("path", ["/admin/stores", "/xapi/statements"])
async def test_body_limit_holds_for_a_chunked_body(small_body_server, credential, path):
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield b" " * 1024

    async with httpx.AsyncClient(base_url=small_body_server.url, auth=credential.auth) as c:
        r = await c.post(
            path,
            content=chunks(),
            headers={"Content-Type": "application/json", "X-Experience-API-Version": "2.0.0"},
        )
    assert_refused(r, 413, "4096")


async def test_a_key_with_a_nul_is_a_failed_authentication(server, credential):
    token = base64.b64encode(f"{credential.key}\0:{credential.secret}".encode()).decode()
    async with httpx.AsyncClient(base_url=server.xapi) as c:
        r = await c.get(
            "/statements",
            headers={"Authorization": f"Basic {token}", "X-Experience-API-Version": "2.0.0"},
        )
    assert_refused(r, 401)


async def test_more_token_reveals_no_positions(client):
    for _ in range(3):
        await client.post("/statements", json=statement())
    more = (await client.get("/statements", params={"limit": 1})).json()["more"]
    token = more.split("more=", 1)[1]
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    assert b'"ceiling"' not in raw and not raw.startswith(b"{")
    # Encrypted with a fresh nonce: the same page asked twice gives two different tokens.
    again = (await client.get("/statements", params={"limit": 1})).json()["more"]
    assert again != more
    # Still a working token.
    page = (await client.get("/statements", params={"more": token})).json()
    assert len(page["statements"]) == 1


async def test_read_mine_gets_only_attachment_content_it_sent(server, client):
    secret_doc = f"salary statement {uuid.uuid4()}".encode()
    meta = attachment_meta(secret_doc, content_type="text/plain")
    r = await send(
        client,
        multipart(statement(attachments=[meta]), [(secret_doc, part_headers(secret_doc, "text/plain"))]),
    )
    assert r.status_code == 200, r.text

    mine = make_credential(server.database_url, "statements/write,statements/read/mine")
    own = f"my own certificate {uuid.uuid4()}".encode()
    own_meta = attachment_meta(own, content_type="text/plain")
    # The same hash as the other credential's attachment, declared by reference only.
    borrowed = dict(meta, fileUrl="https://files.example.no/whatever")
    async with httpx.AsyncClient(
        base_url=server.xapi, auth=mine.auth, headers={"X-Experience-API-Version": "2.0.0"}
    ) as c:
        r = await send(
            c,
            multipart(statement(attachments=[borrowed, own_meta]), [(own, part_headers(own, "text/plain"))]),
        )
        assert r.status_code == 200, r.text
        [sid] = r.json()
        r = await c.get("/statements", params={"statementId": sid, "attachments": "true"})
    assert r.status_code == 200, r.text
    parts = parse_multipart(r)
    contents = [body for _, body in parts[1:]]
    assert contents == [own]
    assert secret_doc not in r.content
    # A credential that may read every statement gets both.
    r = await client.get("/statements", params={"statementId": sid, "attachments": "true"})
    assert sorted(body for _, body in parse_multipart(r)[1:]) == sorted([own, secret_doc])


# --- what real clients send -------------------------------------------------------------------


async def test_boolean_parameters_ignore_case(client):
    course = activity()
    [sid] = (await client.post("/statements", json=statement(obj=course))).json()
    for value in ("True", "TRUE", "true"):
        r = await client.get(
            "/statements",
            params={"activity": course["id"], "related_activities": value, "ascending": value.swapcase()},
        )
        assert r.status_code == 200, r.text
        assert [s["id"] for s in r.json()["statements"]] == [sid]
    r = await client.get("/statements", params={"statementId": sid, "attachments": "False"})
    assert r.status_code == 200 and r.json()["id"] == sid
    assert_refused(await client.get("/statements", params={"ascending": "yes"}), 400, "ascending")
