"""Pulling from another running LRS (a database of its own): all of it, attachments too,
after an interruption in the middle; on schedule by the background worker; refused."""

from __future__ import annotations

import asyncio
import http.server
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any, ClassVar

import httpx
import pytest

from tests.factories import agent, voiding
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
from tests.test_forwarding import everything, same

V2 = {"X-Experience-API-Version": "2.0.0"}


@pytest.fixture(scope="module")
def lrs_pair() -> Iterator[tuple[Server, Server]]:
    """(the other LRS, this one), each on a database of its own."""
    with own_databases(2) as (one, two), running_server(one) as other, running_server(two) as here:
        yield other, here


async def fill(other: Server, count: int) -> tuple[str, Any, list[dict[str, Any]]]:
    """A vendor's store in the other LRS: statements, one with an attachment, one voided."""
    store = new_store(other.database_url, "vendor")
    cred = make_credential(other.database_url, "statements/write,statements/read", store)
    sent = [statement(actor=agent(f"p-{n % 30}")) for n in range(count)]
    content = b"kursbevis " + uuid.uuid4().bytes
    with_file = statement(attachments=[attachment_meta(content)])
    async with httpx.AsyncClient(base_url=other.xapi, auth=cred.auth, headers=V2, timeout=60) as c:
        for i in range(0, count, 500):
            assert (await c.post("/statements", json=sent[i : i + 500])).status_code == 200
        r = await c.post(
            "/statements",
            content=multipart([with_file], [(content, part_headers(content))]),
            headers={"Content-Type": f"multipart/mixed; boundary={BOUNDARY}"},
        )
        assert r.status_code == 200, r.text
        r = await c.post("/statements", json={**voiding(sent[0]["id"]), "id": str(uuid.uuid4())})
        assert r.status_code == 200
    return store, cred, [*sent, with_file]


def pull_args(other: Server, cred: Any, store: str, *extra: str) -> list[str]:
    return [
        "pull",
        "--from",
        other.xapi,
        "--key",
        cred.key,
        "--secret",
        cred.secret,
        "--store",
        store,
        *extra,
    ]


async def test_pull_resumes_after_an_interruption(lrs_pair):
    other, here = lrs_pair
    _, cred, sent = await fill(other, 3000)
    kommune = new_store(here.database_url, "pulled")
    reader = make_credential(here.database_url, "statements/read", kommune)
    # The first pull is killed once it has stored a few pages.
    command = [
        sys.executable,
        "-m",
        "lrs",
        *pull_args(other, cred, kommune, "--name", "vendor", "--page-size", "100"),
    ]
    env = {**os.environ, "LRS_DATABASE_URL": here.database_url}
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(base_url=here.xapi, auth=reader.auth, headers=V2) as c:
        while len((await c.get("/statements", params={"limit": 1000})).json()["statements"]) < 500:
            assert time.monotonic() < deadline and first.poll() is None
            await asyncio.sleep(0.05)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    partway = len(await everything(here, reader))
    assert 500 <= partway < len(sent)

    done = run_cli(here.database_url, *pull_args(other, cred, kommune, "--name", "vendor"))
    assert "pulled" in done.stderr
    theirs = {s["id"]: s for s in await everything(other, cred)}
    ours = await everything(here, reader)
    assert sorted(s["id"] for s in ours) == sorted(theirs)  # the voided one is in neither list
    assert all(same(s, theirs[s["id"]]) and s["authority"] == theirs[s["id"]]["authority"] for s in ours)
    with_file = sent[-1]
    async with httpx.AsyncClient(base_url=here.xapi, auth=reader.auth, headers=V2) as c:
        r = await c.get("/statements", params={"statementId": with_file["id"], "attachments": "true"})
        assert r.headers["content-type"].startswith("multipart/mixed")
        assert b"kursbevis " in r.content
        voided = await c.get("/statements", params={"voidedStatementId": sent[0]["id"]})
        assert voided.status_code == 404  # never pulled: the source no longer lists it

    # Again: nothing new, nothing doubled.
    again = run_cli(here.database_url, *pull_args(other, cred, kommune, "--name", "vendor"))
    assert "pulled 0 statements" in again.stderr or len(await everything(here, reader)) == len(ours)
    assert len(await everything(here, reader)) == len(ours)


async def test_scheduled_pull_and_refusals_through_the_admin_api(lrs_pair):
    other, here = lrs_pair
    store, cred, _ = await fill(other, 20)
    kommune = new_store(here.database_url, "scheduled")
    reader = make_credential(here.database_url, "statements/read", kommune)
    admin = make_credential(here.database_url, "admin")
    async with httpx.AsyncClient(base_url=here.url, auth=admin.auth, timeout=60) as c:
        spec = {"name": "vendor", "endpoint": other.xapi, "key": cred.key, "secret": cred.secret}
        r = await c.post(f"/admin/stores/{kommune}/pulls", json={**spec, "every_seconds": 1})
        assert r.status_code == 200, r.text
        assert "secret" not in r.json()
        # The worker pulls what is there, and then what comes later.
        later = [statement() for _ in range(25)]
        async with httpx.AsyncClient(base_url=other.xapi, auth=cred.auth, headers=V2) as x:
            assert (await x.post("/statements", json=later)).status_code == 200
        deadline = time.monotonic() + 30
        while len(await everything(here, reader)) < 20 + 1 + 25 - 1:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.3)
        listed = (await c.get(f"/admin/stores/{kommune}/pulls")).json()
        assert listed[0]["pulled"] >= 45 and listed[0]["checkpoint"] and listed[0]["last_error"] is None

        # A wrong secret: the run says so, and the source keeps the error.
        r = await c.post(f"/admin/stores/{kommune}/pulls", json={**spec, "name": "wrong", "secret": "nope"})
        run = (await c.post(f"/admin/stores/{kommune}/pulls/wrong/run")).json()
        assert run["error"].startswith("401") and run["statements"] == 0
        wrong = next(
            s for s in (await c.get(f"/admin/stores/{kommune}/pulls")).json() if s["name"] == "wrong"
        )
        assert wrong["last_error"].startswith("401")
        assert (await c.delete(f"/admin/stores/{kommune}/pulls/wrong")).status_code == 204
        assert (await c.post(f"/admin/stores/{kommune}/pulls/wrong/run")).status_code == 404
        entries = (await c.get("/admin/audit", params={"store": kommune})).json()
        assert {"pull.save", "pull.run", "pull.delete"} <= {e["action"] for e in entries}
        assert all(cred.secret not in str(e) for e in entries)
    refused = run_cli(
        here.database_url,
        *pull_args(other, type(cred)(cred.key, "nope", store), kommune, "--name", "x"),
        check=False,
    )
    assert refused.returncode == 1 and "401" in refused.stderr


class _Busy(http.server.BaseHTTPRequestHandler):
    """In front of the other LRS: every other request is a 429 (Retry-After: 1) or a 503;
    the rest pass through. A real HTTP server, as a rate-limited LRS would be."""

    upstream = ""
    seen: ClassVar[list[int]] = []

    def do_GET(self) -> None:
        n = len(self.seen)
        if n % 2 == 0:
            status = 429 if n % 4 == 0 else 503
            self.seen.append(status)
            self.send_response(status)
            self.send_header("Retry-After", "1")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        passed = httpx.get(self.upstream + self.path, headers=dict(self.headers), timeout=30)
        self.seen.append(passed.status_code)
        self.send_response(passed.status_code)
        for name in ("content-type", "x-experience-api-consistent-through"):
            if name in passed.headers:
                self.send_header(name, passed.headers[name])
        self.send_header("Content-Length", str(len(passed.content)))
        self.end_headers()
        self.wfile.write(passed.content)

    def log_message(self, *args: Any) -> None:
        pass


async def test_rate_limits_and_unavailability_are_waited_out(lrs_pair):
    other, here = lrs_pair
    _, cred, _ = await fill(other, 1200)
    _Busy.upstream = other.url
    _Busy.seen = []
    busy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Busy)
    threading.Thread(target=busy.serve_forever, daemon=True).start()
    try:
        front = f"http://127.0.0.1:{busy.server_address[1]}/xapi"
        kommune = new_store(here.database_url, "busy")
        started = time.monotonic()
        done = run_cli(
            here.database_url,
            *pull_args(other, cred, kommune, "--name", "busy", "--page-size", "500"),
            "--from",  # the last --from wins: the busy front instead of the LRS itself
            front,
        )
        assert "pulled 1201 statements" in done.stderr, done.stderr
        assert 429 in _Busy.seen and 503 in _Busy.seen and 200 in _Busy.seen
        # Each refusal was waited out for its Retry-After (one second).
        assert time.monotonic() - started >= _Busy.seen.count(429) + _Busy.seen.count(503) - 1
    finally:
        busy.shutdown()
