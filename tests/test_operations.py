"""Operations: the committed OpenAPI document, health, metrics, logs and security headers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from lrs.app import openapi_document
from tests.harness import ROOT, free_port, start_server, stop_server


def test_committed_openapi_document_matches_the_app():
    committed = (ROOT / "openapi" / "openapi.json").read_text()
    assert committed == openapi_document(), "run `lrs openapi` and commit openapi/openapi.json"


def test_openapi_describes_xapi_parameters_and_errors():
    doc = json.loads(openapi_document())
    get = doc["paths"]["/xapi/statements"]["get"]
    names = {p["name"] for p in get["parameters"]}
    assert {"X-Experience-API-Version", "agent", "verb", "activity", "since", "more"} <= names
    assert "400" in get["responses"] and "503" in get["responses"]
    state = doc["paths"]["/xapi/activities/state"]["put"]
    assert {"activityId", "agent", "stateId", "If-Match"} <= {p["name"] for p in state["parameters"]}
    assert "412" in state["responses"]
    operations = [op.get("operationId") for path in doc["paths"].values() for op in path.values()]
    assert len(operations) == len(set(operations))


async def test_health_endpoints(server):
    async with httpx.AsyncClient(base_url=server.url) as c:
        assert (await c.get("/health/live")).json() == {"status": "live"}
        r = await c.get("/health/ready")
        assert r.status_code == 200
        assert r.json()["checks"] == {"database": "ok", "migrations": "ok"}


def test_ready_is_503_when_the_database_is_down():
    """The database disappears under a running server: live stays up, ready says why not."""
    from tests.harness import create_database, drop_database

    url, admin = create_database()
    srv = start_server(url)
    try:
        drop_database(url, admin)
        assert httpx.get(srv.url + "/health/live").status_code == 200
        r = httpx.get(srv.url + "/health/ready")
        assert r.status_code == 503
        assert r.json()["checks"]["database"].startswith("unreachable")
    finally:
        stop_server(srv)


def test_connections_cut_by_postgresql_are_replaced_unnoticed():
    """PostgreSQL ends every connection of a running server (a restart, a failover, an idle
    timeout): each pooled connection is checked as it is taken, so no request fails."""
    import asyncpg
    from sqlalchemy import make_url

    from tests.harness import create_database, drop_database, make_credential

    url, admin = create_database()
    srv = start_server(url)
    try:
        cred = make_credential(url, "all")
        headers = {"X-Experience-API-Version": "2.0.0"}
        with httpx.Client(base_url=srv.xapi, auth=cred.auth, headers=headers) as c:
            # Several at once, so that the pools hold more than one connection each.
            with httpx.Client(base_url=srv.xapi, auth=cred.auth, headers=headers) as other:
                for _ in range(5):
                    assert c.get("/statements").status_code == 200
                    assert other.get("/statements").status_code == 200

            async def cut() -> int:
                conn = await asyncpg.connect(admin.replace("postgresql+asyncpg://", "postgresql://"))
                try:
                    ended: int = await conn.fetchval(
                        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                        " WHERE datname = $1 AND pid <> pg_backend_pid()",
                        make_url(url).database,
                    )
                    return ended
                finally:
                    await conn.close()

            assert asyncio.run(cut()) > 0
            statement = {
                "actor": {"mbox": "mailto:cut@example.no"},
                "verb": {"id": "http://adlnet.gov/expapi/verbs/experienced"},
                "object": {"id": "https://kurs.example.no/cut"},
            }
            statuses = [c.get("/statements").status_code for _ in range(20)]
            statuses.append(c.post("/statements", json=statement).status_code)
            assert statuses == [200] * 21
    finally:
        stop_server(srv)
        drop_database(url, admin)


async def test_metrics_count_requests_and_statements(client, server):
    async with httpx.AsyncClient(base_url=server.url) as c:
        before = (await c.get("/metrics")).text
        await client.post(
            "/statements",
            json=[
                {
                    "actor": {"mbox": "mailto:metrics@example.no"},
                    "verb": {"id": "http://adlnet.gov/expapi/verbs/experienced"},
                    "object": {"id": "https://kurs.example.no/metrics"},
                }
            ]
            * 1,
        )
        after = (await c.get("/metrics")).text

    def value(text: str, prefix: str) -> float:
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))

    route = 'lrs_http_requests_total{method="POST",route="/xapi/statements",status="200"}'
    assert value(after, route) == value(before, route) + 1
    assert value(after, "lrs_statements_ingested_total") == value(before, "lrs_statements_ingested_total") + 1
    assert "lrs_db_pool_connections_in_use" in after


async def test_request_id_and_security_headers(client):
    r = await client.get("/about", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"
    assert r.headers["x-content-type-options"] == "nosniff"
    r = await client.get("/about")
    assert len(r.headers["x-request-id"]) == 32


def test_logs_are_json_lines_without_secrets(database_url, tmp_path: Path):
    srv = start_server(database_url)
    try:
        httpx.get(
            srv.xapi + "/statements?agent=%7B%22mbox%22%3A%22mailto%3Asecret%40e.no%22%7D",
            auth=("key", "hunter2-secret"),
            headers={"X-Request-ID": "log-test-1", "X-Experience-API-Version": "2.0.0"},
        )
    finally:
        stop_server(srv)
    lines = [json.loads(line) for line in Path(srv.log_path).read_text().splitlines() if line.startswith("{")]
    mine = [entry for entry in lines if entry.get("request_id") == "log-test-1"]
    assert mine and mine[0]["status"] == 401 and mine[0]["route"] == "/xapi/statements"
    text = Path(srv.log_path).read_text()
    assert "hunter2" not in text and "secret@e.no" not in text


def test_container_entrypoint_serves_and_drains(database_url):
    """docker/entrypoint.sh, run as the image runs it: migrates, serves, stops on SIGTERM."""
    port = free_port()
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "LRS_DATABASE_URL": database_url,
        "LRS_PORT": str(port),
        "LRS_HOST": "127.0.0.1",
        "LRS_WORKERS": "2",
    }
    process = subprocess.Popen(
        ["sh", str(ROOT / "docker" / "entrypoint.sh")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        ready = None
        while time.monotonic() < deadline and process.poll() is None:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        assert ready is not None and ready.status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
    missing = subprocess.run(
        ["sh", str(ROOT / "docker" / "entrypoint.sh")],
        env={k: v for k, v in env.items() if k != "LRS_DATABASE_URL"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert missing.returncode == 64 and "LRS_DATABASE_URL" in missing.stderr
