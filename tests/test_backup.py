"""Backup and restore as the README describes it: pg_dump, drop, pg_restore, and the LRS
serves the same statements, documents and attachments, byte for byte."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import make_url

from tests.factories import activity, agent, statement
from tests.harness import create_database, drop_database, make_credential, pg_tool, running_server
from tests.test_attachments_api import attachment_meta, multipart, part_headers, send

V2 = {"X-Experience-API-Version": "2.0.0"}


def libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def everything(xapi: str, auth: tuple[str, str], state: dict[str, str], sid: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=xapi, auth=auth, headers=V2) as c:
        page = await c.get("/statements", params={"limit": 0, "ascending": "true"})
        with_attachment = await c.get("/statements", params={"statementId": sid, "attachments": "true"})
        doc = await c.get("/activities/state", params=state)
    body = with_attachment.content.split(
        with_attachment.headers["content-type"].split("boundary=")[1].encode()
    )
    return {
        "statements": page.json()["statements"],
        "attachment_parts": body[2:],  # after the statement part: the attachment, byte for byte
        "state": (doc.content, doc.headers["etag"], doc.headers["content-type"]),
    }


async def test_dump_drop_restore_gives_back_the_same_lrs(tmp_path: Path) -> None:
    url, admin = await asyncio.to_thread(create_database)
    try:
        cred = make_credential(url)
        state = {
            "activityId": activity()["id"],
            "agent": '{"mbox":"mailto:kari@example.no"}',
            "stateId": "bookmark",
        }
        data = f"certificate {uuid.uuid4()}".encode()
        with running_server(url) as srv:
            async with httpx.AsyncClient(base_url=srv.xapi, auth=cred.auth, headers=V2) as c:
                assert (await c.post("/statements", json=[statement() for _ in range(20)])).status_code == 200
                meta = attachment_meta(data, content_type="text/plain")
                r = await send(
                    c,
                    multipart(
                        statement(actor=agent(), attachments=[meta]),
                        [(data, part_headers(data, "text/plain"))],
                    ),
                )
                [sid] = r.json()
                assert (await c.put("/activities/state", params=state, content=b"page 7")).status_code == 204
            before = await everything(srv.xapi, cred.auth, state, sid)

        dump = tmp_path / "lrs.dump"
        dumper, restorer, psql = (pg_tool(t, url) for t in ("pg_dump", "pg_restore", "psql"))
        subprocess.run([dumper, "--format=custom", f"--file={dump}", libpq(url)], check=True, timeout=120)
        await asyncio.to_thread(drop_database, url, admin)
        name = make_url(url).database
        subprocess.run([psql, libpq(admin), "-q", "-c", f'CREATE DATABASE "{name}"'], check=True, timeout=60)
        subprocess.run([restorer, "--no-owner", f"--dbname={libpq(url)}", str(dump)], check=True, timeout=120)

        with running_server(url) as restored:
            after = await everything(restored.xapi, cred.auth, state, sid)
        assert len(before["statements"]) == 21
        assert after == before
        assert data in after["attachment_parts"][0]
    finally:
        await asyncio.to_thread(drop_database, url, admin)
