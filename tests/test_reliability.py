"""Bad input, limits, retries and shutdown: nothing lost, nothing half-stored, never a 500."""

from __future__ import annotations

import json
import signal
import string
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.corpus import INVALID, invalid_statement
from tests.factories import activity, statement
from tests.harness import Server, make_credential, metric, start_server, stop_server

V2 = {"X-Experience-API-Version": "2.0.0"}

# --- strategies for valid statements -------------------------------------------------------------

names = st.text(alphabet=string.ascii_letters + "æøåÆØÅ -", min_size=1, max_size=30)
slugs = st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=20)
iris = slugs.map(lambda s: f"https://kurs.example.no/{s}")
tags = st.sampled_from(["en", "en-US", "nb", "nb-NO", "nn", "se", "de-DE", "zh-Hant"])
lang_maps = st.dictionaries(tags, names, min_size=1, max_size=3)
agents = st.one_of(
    slugs.map(lambda s: {"mbox": f"mailto:{s}@kommune.example.no"}),
    slugs.map(
        lambda s: {"objectType": "Agent", "account": {"homePage": "https://idp.example.no", "name": s}}
    ),
    st.text(alphabet="0123456789abcdef", min_size=40, max_size=40).map(lambda h: {"mbox_sha1sum": h}),
).flatmap(lambda a: st.one_of(st.just(a), names.map(lambda n: {**a, "name": n})))
scores = st.fixed_dictionaries(
    {},
    optional={
        "scaled": st.floats(-1, 1, allow_nan=False),
        "raw": st.just(5),
        "min": st.just(0),
        "max": st.just(10),
    },
)
results = st.fixed_dictionaries(
    {},
    optional={
        "score": scores,
        "success": st.booleans(),
        "completion": st.booleans(),
        "response": names,
        "duration": st.integers(0, 10_000).map(lambda s: f"PT{s}S"),
        "extensions": st.dictionaries(
            iris, st.one_of(st.integers(-(2**63), 2**63 - 1), names, st.none()), max_size=2
        ),
    },
)
activities = st.builds(
    lambda i, d: {"objectType": "Activity", "id": i, **d},
    iris,
    st.fixed_dictionaries(
        {},
        optional={
            "definition": st.fixed_dictionaries({}, optional={"name": lang_maps, "description": lang_maps})
        },
    ),
)
contexts = st.fixed_dictionaries(
    {},
    optional={
        "registration": st.uuids().map(str),
        "platform": names,
        "language": tags,
        "contextActivities": st.fixed_dictionaries(
            {},
            optional={
                "parent": st.lists(activities, min_size=1, max_size=2),
                "grouping": st.lists(activities, min_size=1, max_size=2),
            },
        ),
    },
)
statements = st.builds(
    lambda a, v, o, r, c: {
        "actor": a,
        "verb": {"id": v},
        "object": o,
        **({"result": r} if r else {}),
        **({"context": c} if c else {}),
    },
    agents,
    iris,
    activities,
    results,
    contexts,
)

COMMON = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def http(server: Server) -> Any:
    cred = make_credential(server.database_url)
    with httpx.Client(base_url=server.xapi, auth=cred.auth, headers=V2, timeout=30) as c:
        yield c


@COMMON
@given(statements)
def test_valid_statements_round_trip_unchanged(http, s):
    s = {**s, "id": str(uuid.uuid4())}
    r = http.post("/statements", json=s)
    assert r.status_code == 200, r.text
    got = http.get("/statements", params={"statementId": s["id"]}).json()
    for key in ("actor", "verb", "object", "result"):
        if key in s:
            assert got[key] == s[key], key
    if "context" in s:
        assert {k: v for k, v in got["context"].items() if k != "contextActivities"} == {
            k: v for k, v in s["context"].items() if k != "contextActivities"
        }


@COMMON
@given(statements, st.sampled_from(INVALID))
def test_invalid_statements_are_400_and_store_nothing(http, s, case):
    name, mutation, _ = case
    bad = invalid_statement(mutation)
    sid = str(uuid.uuid4())
    r = http.post("/statements", json=[{**s, "id": sid}, bad])
    assert r.status_code == 400, (name, r.text)
    assert r.json()["message"]
    assert http.get("/statements", params={"statementId": sid}).status_code == 404


HOSTILE = st.sampled_from(
    [
        "'; DROP TABLE statements; --",
        '{"mbox": "mailto:x@y.z\' OR 1=1 --"}',
        '{"account": {"homePage": "http://x", "name": "$.*"}}',
        "\u0000",
        "9" * 40,
        "https://e.no/\u202e",
        '{"mbox": "mailto:a@b.c"}',
        "true",
        "-1",
    ]
)
QUERY_PARAMS = st.dictionaries(
    st.sampled_from(
        [
            "agent",
            "verb",
            "activity",
            "registration",
            "since",
            "until",
            "limit",
            "format",
            "ascending",
            "related_agents",
            "related_activities",
        ]
    ),
    st.one_of(st.text(max_size=40), HOSTILE),
    max_size=4,
)


@COMMON
@given(QUERY_PARAMS)
def test_query_parameters_never_fail_the_server(http, params):
    r = http.get("/statements", params=params)
    assert r.status_code in (200, 400), (params, r.status_code, r.text)
    if r.status_code == 200:
        assert isinstance(r.json()["statements"], list)


def test_injection_in_parameters_changes_only_the_result(http):
    before = http.get("/statements", params={"limit": 1}).status_code
    for value in ('{"mbox": "mailto:x@y.z\' OR 1=1 --"}', '{"mbox": "mailto:x@y.z\\u0000"}'):
        r = http.get("/statements", params={"agent": value})
        assert r.status_code in (200, 400)
        if r.status_code == 200:
            assert r.json()["statements"] == []
    assert http.get("/statements", params={"limit": 1}).status_code == before


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"[" * 5000 + b"]" * 5000, "application/json"),
        (b'{"actor": ' + b"1" * 400 + b"}", "application/json"),
        (b'{"a": "\xed\xa0\x80"}', "application/json"),
        (b"--x\r\nContent-Type: application/json\r\n\r\n{}", "multipart/mixed; boundary=x"),
        (b"{}", "application/xml"),
    ],
)
def test_hostile_bodies_are_400(http, body, content_type):
    r = http.post("/statements", content=body, headers={"Content-Type": content_type})
    assert r.status_code == 400, r.text


def test_oversized_headers_are_refused(http):
    r = http.get("/statements", headers={"X-Padding": "x" * 20_000})
    assert r.status_code == 431


def test_retry_with_the_same_ids_stores_once(http):
    course = activity()
    batch = [statement(id=str(uuid.uuid4()), obj=course) for _ in range(5)]
    first = http.post("/statements", json=batch)
    again = http.post("/statements", json=batch)
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    found = http.get("/statements", params={"activity": course["id"]}).json()["statements"]
    assert len(found) == 5


def test_failed_authentication_is_rate_limited(database_url):
    srv = start_server(database_url, auth_failures_per_minute="5")
    try:
        with httpx.Client(base_url=srv.xapi, headers=V2) as c:
            codes = [c.get("/statements", auth=("nobody", "wrong")).status_code for _ in range(8)]
            assert codes[:5] == [401] * 5 and set(codes[5:]) == {429}
            r = c.get("/statements", auth=("nobody", "wrong"))
            assert int(r.headers["Retry-After"]) > 0
            assert "<" not in r.text and "Traceback" not in r.text
    finally:
        stop_server(srv)


def test_sigterm_drains_in_flight_requests(database_url):
    """A batch in flight when the server is told to stop is answered and stored.

    The body goes in two halves with the signal between them, and the signal waits until
    the server counts the request in progress (its headers read, its body not yet): a
    connection whose request the server has not yet read is idle, and closed at shutdown.
    """
    import threading

    srv = start_server(database_url)
    cred = make_credential(database_url)
    course = activity()
    body = json.dumps([statement(obj=course) for _ in range(1000)]).encode()
    half_sent, signalled = threading.Event(), threading.Event()
    outcome: dict[str, Any] = {}

    def halves() -> Iterator[bytes]:
        yield body[: len(body) // 2]
        half_sent.set()
        assert signalled.wait(30)
        yield body[len(body) // 2 :]

    def send() -> None:
        with httpx.Client(base_url=srv.xapi, auth=cred.auth, headers=V2, timeout=60) as c:
            outcome["response"] = c.post(
                "/statements", content=halves(), headers={"Content-Type": "application/json"}
            )

    worker = threading.Thread(target=send)
    worker.start()
    assert half_sent.wait(30)
    deadline = time.monotonic() + 30
    # The /metrics request counts itself too.
    while (metric(httpx.get(srv.url + "/metrics").text, "lrs_http_requests_in_progress") or 0) < 2:
        assert time.monotonic() < deadline, "the server never began the request"
        time.sleep(0.05)
    srv.process.send_signal(signal.SIGTERM)
    signalled.set()
    worker.join(60)
    # uvicorn re-raises SIGTERM once it has drained, for the conventional exit status.
    assert srv.process.wait(30) in (0, -signal.SIGTERM)
    response = outcome["response"]
    assert response.status_code == 200, response.text
    after = start_server(database_url)
    try:
        with httpx.Client(base_url=after.xapi, auth=cred.auth, headers=V2) as c:
            found = c.get("/statements", params={"activity": course["id"], "limit": 0}).json()
            assert len(found["statements"]) == 1000
    finally:
        stop_server(after)


def test_deeply_nested_extensions_are_stored_or_refused_cleanly(http):
    value: Any = "leaf"
    for _ in range(200):
        value = {"n": value}
    r = http.post("/statements", json=statement(result={"extensions": {"https://e.no/deep": value}}))
    assert r.status_code == 200
    sid = r.json()[0]
    got = http.get("/statements", params={"statementId": sid}).json()
    assert json.dumps(got["result"]["extensions"]["https://e.no/deep"]) == json.dumps(value)


@pytest.mark.parametrize(
    ("value", "status"),
    [
        (2**63 - 1, 200),
        (-(2**63), 200),
        (2**63, 400),
        (-(2**63) - 1, 400),
        (10**30, 400),
    ],
)
def test_integers_beyond_64_bits_are_refused_not_rounded(http, value, status):
    s = statement(result={"extensions": {"https://e.no/n": value}})
    r = http.post("/statements", content=json.dumps(s), headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text
    if status == 200:
        got = http.get("/statements", params={"statementId": r.json()[0]}).json()
        assert got["result"]["extensions"]["https://e.no/n"] == value
    else:
        assert "64-bit" in r.json()["message"]
