"""Shared fixtures: a fresh database, a real server over HTTP, and credentials made by the CLI.

The database comes from ``LRS_TEST_DATABASE_URL`` (a server where we may create databases);
without it, an embedded PostgreSQL is started in a temporary directory.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from lrs.store.db import as_asyncpg

ROOT = Path(__file__).resolve().parent


def _admin_url() -> str:
    url = os.environ.get("LRS_TEST_DATABASE_URL")
    if url:
        return as_asyncpg(url)
    from lrs.embedded import start_embedded

    data_dir = Path(tempfile.mkdtemp(prefix="lrs-test-"))
    return start_embedded(data_dir)


async def _create_database(admin_url: str, name: str) -> None:
    engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await engine.dispose()


async def _drop_database(admin_url: str, name: str) -> None:
    engine = create_async_engine(admin_url, isolation_level="AUTOCOMMIT")
    async with engine.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await engine.dispose()


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A new, empty database for this test session, dropped afterwards."""
    admin = _admin_url()
    name = f"lrs_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_create_database(admin, name))
    url = make_url(admin).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        asyncio.run(_drop_database(admin, name))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_cli(database_url: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the real ``lrs`` command against the test database."""
    env = {**os.environ, "LRS_DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "lrs", *args],
        env=env,
        capture_output=True,
        text=True,
        check=check,
        timeout=120,
    )


@dataclass
class Server:
    url: str  # e.g. http://127.0.0.1:PORT
    database_url: str
    process: subprocess.Popen[bytes]

    @property
    def xapi(self) -> str:
        return self.url + "/xapi"


def start_server(database_url: str, **settings: str) -> Server:
    port = free_port()
    env = {
        **os.environ,
        "LRS_DATABASE_URL": database_url,
        "LRS_CREDENTIAL_CACHE_SECONDS": "0",
        **{f"LRS_{k.upper()}": v for k, v in settings.items()},
    }
    log = open(tempfile.mktemp(prefix="lrs-server-", suffix=".log"), "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "lrs.app:app_from_env",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited; see {log.name}")
        try:
            if httpx.get(url + "/xapi/about", timeout=1).status_code == 200:
                return Server(url, database_url, process)
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"server did not start; see {log.name}")


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(10)
    except subprocess.TimeoutExpired:
        server.process.kill()


@pytest.fixture(scope="session")
def server(database_url: str) -> Iterator[Server]:
    """The LRS, started as a user would start it, on the session's database."""
    srv = start_server(database_url)
    try:
        yield srv
    finally:
        stop_server(srv)


@dataclass(frozen=True)
class Cred:
    key: str
    secret: str
    store: str

    @property
    def auth(self) -> tuple[str, str]:
        return (self.key, self.secret)


def make_credential(
    database_url: str, scopes: str = "all", store: str = "default", label: str = "test"
) -> Cred:
    out = run_cli(
        database_url,
        "credentials",
        "create",
        "--store",
        store,
        "--scopes",
        scopes,
        "--label",
        label,
        "--json",
    )
    record = json.loads(out.stdout)
    return Cred(record["key"], record["secret"], store)


@pytest.fixture(scope="session")
def credential(server: Server) -> Cred:
    return make_credential(server.database_url)


@pytest.fixture(scope="session")
async def client(server: Server, credential: Cred) -> AsyncIterator[httpx.AsyncClient]:
    """An xAPI 2.0 client with an `all` credential of the default store."""
    async with httpx.AsyncClient(
        base_url=server.xapi,
        auth=credential.auth,
        timeout=30,
        headers={"X-Experience-API-Version": "2.0.0"},
    ) as c:
        yield c


@pytest.fixture(scope="session")
async def client_v1(server: Server, credential: Cred) -> AsyncIterator[httpx.AsyncClient]:
    """The same, speaking xAPI 1.0.3."""
    async with httpx.AsyncClient(
        base_url=server.xapi,
        auth=credential.auth,
        timeout=30,
        headers={"X-Experience-API-Version": "1.0.3"},
    ) as c:
        yield c
