"""Read replicas, against a real PostgreSQL streaming replica made for the test: reads go to
the replica and say honestly how fresh they are; a credential reads its own writes at once;
a replica that falls behind or stops is left for the primary, and /health/ready says so."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import pytest

from lrs.store.replicas import Primary, Replay, freshness
from tests.factories import activity, agent, statement_with_id
from tests.harness import Cred, Server, make_credential, rollups_folded, running_server
from tests.replication import StreamingPair, streaming_pair

MAX_LAG = 4.0
XAPI = {"X-Experience-API-Version": "2.0.0"}
THROUGH = "X-Experience-API-Consistent-Through"


@dataclass
class Setup:
    pair: StreamingPair
    server: Server
    writer: Cred
    reader: Cred


@pytest.fixture(scope="module")
def setup() -> Iterator[Setup]:
    with streaming_pair() as pair:
        pair.execute(pair.primary, "CREATE DATABASE lrs")
        primary, replica = pair.primary.url("lrs"), pair.replica.url("lrs")
        with running_server(
            primary, read_database_url=replica, replica_max_lag_seconds=str(MAX_LAG)
        ) as server:
            writer = make_credential(primary, label="writer")
            reader = make_credential(primary, scopes="all,analytics/learners", label="reader")
            yield Setup(pair, server, writer, reader)


def _client(setup: Setup, cred: Cred) -> httpx.Client:
    return httpx.Client(base_url=setup.server.url, auth=cred.auth, headers=XAPI, timeout=30)


def _counts(setup: Setup) -> dict[str, float]:
    """Reads by where they went: "replica", and each reason the primary took one instead."""
    page = httpx.get(setup.server.url + "/metrics").text
    found: dict[str, float] = {}
    for line in page.splitlines():
        m = re.match(r'lrs_replica_reads_total\{replica="[^"]+"\} (\S+)', line)
        if m:
            found["replica"] = found.get("replica", 0) + float(m.group(1))
        m = re.match(r'lrs_replica_fallback_reads_total\{reason="([^"]+)"\} (\S+)', line)
        if m:
            found[m.group(1)] = float(m.group(2))
    return found


def _grew(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: after.get(k, 0) - before.get(k, 0) for k in after if after.get(k, 0) != before.get(k, 0)}


def _ready(setup: Setup) -> dict[str, Any]:
    r = httpx.get(setup.server.url + "/health/ready")
    assert r.status_code == 200, r.text  # the primary serves: ready, whatever the replicas do
    body: dict[str, Any] = r.json()
    return body


def _wait_for_state(setup: Setup, state: str, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body = _ready(setup)
        if body["replicas"][0]["state"] == state:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"the replica never became {state!r}: {body}")
        time.sleep(0.2)


def _stored(c: httpx.Client, statement_id: str) -> datetime:
    r = c.get("/xapi/statements", params={"statementId": statement_id})
    assert r.status_code == 200, r.text
    return datetime.fromisoformat(r.json()["stored"])


def test_reads_are_answered_by_the_replica(setup: Setup) -> None:
    course = activity()
    learners = [agent() for _ in range(6)]
    sent = [statement_with_id(actor=a, obj=course) for a in learners]
    with _client(setup, setup.writer) as w, _client(setup, setup.reader) as r:
        assert w.post("/xapi/statements", json=sent).status_code == 200
        state = {"activityId": course["id"], "agent": _json(learners[0]), "stateId": "bookmark"}
        assert w.put("/xapi/activities/state", params=state, json={"page": 7}).status_code == 204
        asyncio.run(rollups_folded(setup.server.database_url))
        setup.pair.wait_for_replay("lrs")
        _wait_for_state(setup, "ok")

        before = _counts(setup)
        found = r.get("/xapi/statements", params={"activity": course["id"]})
        assert found.status_code == 200 and len(found.json()["statements"]) == 6
        assert r.get("/xapi/statements", params={"statementId": sent[0]["id"]}).status_code == 200
        assert r.get("/xapi/activities", params={"activityId": course["id"]}).status_code == 200
        doc = r.get("/xapi/activities/state", params=state)
        assert doc.status_code == 200 and doc.json() == {"page": 7}
        figures = r.get("/analytics/completion", params={"activity": course["id"]})
        assert figures.status_code == 200, figures.text
        assert _completed(figures.json()) == 6
        grew = _grew(before, _counts(setup))
    # Each of the five requests read once, and every read went to the replica.
    assert grew == {"replica": 5}, grew


def test_a_writer_reads_its_own_writes_while_the_replica_lags(setup: Setup) -> None:
    course = activity()
    late = statement_with_id(obj=course)
    with _client(setup, setup.writer) as w, _client(setup, setup.reader) as r:
        setup.pair.execute(setup.pair.replica, "SELECT pg_wal_replay_pause()")
        try:
            before = _counts(setup)
            assert w.post("/xapi/statements", json=[late]).status_code == 200
            stored = _stored(w, late["id"])  # the writer's own read: the primary, at once
            state = {"activityId": course["id"], "agent": _json(late["actor"]), "stateId": "bookmark"}
            assert w.put("/xapi/activities/state", params=state, json={"page": 1}).status_code == 204
            assert w.get("/xapi/activities/state", params=state).json() == {"page": 1}

            # Another credential reads from the replica, which has not replayed the write,
            # and the consistency header says how far it can vouch.
            missing = r.get("/xapi/statements", params={"statementId": late["id"]})
            assert missing.status_code == 404
            assert datetime.fromisoformat(missing.headers[THROUGH]) < stored
            assert r.get("/xapi/activities/state", params=state).status_code == 404
            figures = r.get("/analytics/completion", params={"activity": course["id"]})
            assert datetime.fromisoformat(figures.json()["as_of"]) < stored
            assert _grew(before, _counts(setup)) == {"not yet replayed": 2, "replica": 3}

            # Past the allowed lag, nobody reads from it.
            body = _wait_for_state(setup, "behind")
            assert body["reads_from"] == "primary" and body["replicas"][0]["lag_seconds"] > MAX_LAG
            before = _counts(setup)
            assert r.get("/xapi/statements", params={"statementId": late["id"]}).status_code == 200
            assert _grew(before, _counts(setup)) == {"behind": 1}
        finally:
            setup.pair.execute(setup.pair.replica, "SELECT pg_wal_replay_resume()")

        body = _wait_for_state(setup, "ok")
        assert body["reads_from"] == "replicas"
        before = _counts(setup)
        again = r.get("/xapi/statements", params={"statementId": late["id"]})
        assert again.status_code == 200
        assert datetime.fromisoformat(again.headers[THROUGH]) >= stored
        assert _grew(before, _counts(setup)) == {"replica": 1}


def test_a_stopped_replica_leaves_reads_to_the_primary(setup: Setup) -> None:
    with _client(setup, setup.reader) as r:
        setup.pair.stop(setup.pair.replica)
        try:
            before = _counts(setup)
            assert r.get("/xapi/statements", params={"limit": 1}).status_code == 200
            assert _grew(before, _counts(setup)) == {"unreachable": 1}
            body = _ready(setup)
            assert body["checks"] == {"database": "ok", "migrations": "ok"}
            assert body["replicas"][0]["state"] == "unreachable" and body["reads_from"] == "primary"
            page = httpx.get(setup.server.url + "/metrics").text
            assert re.search(r'^lrs_replica_usable\{replica="[^"]+"\} 0\.0$', page, re.M), page
        finally:
            setup.pair.start(setup.pair.replica)

        _wait_for_state(setup, "ok")
        # Left alone for a few seconds after the refusal, then asked again.
        deadline = time.monotonic() + 20
        while _counts(setup).get("replica", 0) == before.get("replica", 0):
            assert time.monotonic() < deadline, "reads never went back to the replica"
            assert r.get("/xapi/statements", params={"limit": 1}).status_code == 200
            time.sleep(0.5)


def _json(value: Any) -> str:
    return json.dumps(value)


def _completed(body: dict[str, Any]) -> int:
    """Learners who completed, from a completion answer without groups."""
    (group,) = body["groups"]
    return int(group["learners_completed"])


def test_pages_of_a_query_come_from_where_the_first_page_is_replayed(setup: Setup) -> None:
    course = activity()
    with _client(setup, setup.writer) as w, _client(setup, setup.reader) as r:
        assert (
            w.post("/xapi/statements", json=[statement_with_id(obj=course) for _ in range(3)]).status_code
            == 200
        )
        setup.pair.wait_for_replay("lrs")
        before = _counts(setup)
        page = r.get("/xapi/statements", params={"activity": course["id"], "limit": 1}).json()
        seen = [s["id"] for s in page["statements"]]
        while page["more"]:
            page = r.get(page["more"]).json()
            seen += [s["id"] for s in page["statements"]]
        assert len(set(seen)) == 3
        assert _grew(before, _counts(setup)) == {"replica": 3}


def test_a_replica_answers_only_what_it_can_vouch_for() -> None:
    """The rules of store.replicas.freshness, case by case (positions are WAL bytes)."""
    now = datetime.fromisoformat("2026-12-04T10:00:00+00:00")
    beat = datetime.fromisoformat("2026-12-04T09:59:59+00:00")
    primary = Primary(through=now, lsn=1000, needed_lsn=None)
    assert freshness(primary, Replay(1000, beat, 1.0), 4) == now  # replayed all: the primary's time
    assert freshness(primary, Replay(900, beat, 1.0), 4) == beat  # behind a little: its heartbeat's
    assert freshness(primary, Replay(900, beat, 5.0), 4) == "behind"
    assert freshness(primary, Replay(900, None, None), 4) == "behind"  # no heartbeat replayed yet
    assert freshness(primary, Replay(None, None, None), 4) == "not a replica"
    needing = Primary(through=now, lsn=1000, needed_lsn=950)  # the reader wrote at 950
    assert freshness(needing, Replay(900, beat, 1.0), 4) == "not yet replayed"
    assert freshness(needing, Replay(950, beat, 1.0), 4) == beat


ANALYTICS = ["completion", "engagement", "engagement/hours", "dropoff", "elements", "feedback", "learners"]


def test_analytics_and_the_dashboard_read_from_the_replica(setup: Setup) -> None:
    """Every analytics question and dashboard page runs on a read-only server."""
    course = activity()
    with _client(setup, setup.writer) as w, _client(setup, setup.reader) as r:
        sent = [statement_with_id(obj=course) for _ in range(6)]
        assert w.post("/xapi/statements", json=sent).status_code == 200
        asyncio.run(rollups_folded(setup.server.database_url))
        setup.pair.wait_for_replay("lrs")
        before = _counts(setup)
        for path in ANALYTICS:
            answer = r.get(f"/analytics/{path}", params={"activity": course["id"]})
            assert answer.status_code == 200, (path, answer.text)
        assert r.get("/analytics/activities").status_code == 200
        assert r.get("/analytics/engagement", params={"interval": "week"}).status_code == 200
    with httpx.Client(base_url=setup.server.url, timeout=30) as browser:
        form = browser.get("/dashboard/signin")
        signed = browser.post(
            "/dashboard/signin",
            data={"key": setup.reader.key, "secret": setup.reader.secret, "csrf": form.cookies["lrs_signin"]},
        )
        assert signed.status_code == 303 and signed.headers["location"] == "/dashboard"
        for page in ("/dashboard", "/dashboard/course", "/dashboard/learners"):
            shown = browser.get(page, params={"activity": course["id"]})
            assert shown.status_code == 200, (page, shown.text[:500])
    grew = _grew(before, _counts(setup))
    assert set(grew) == {"replica"} and grew["replica"] >= len(ANALYTICS) + 5, grew
