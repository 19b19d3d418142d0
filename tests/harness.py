"""Running the real thing for tests and the conformance runner: databases, servers, the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

from lrs.embedded import pgserver
from lrs.store.db import as_asyncpg

ROOT = Path(__file__).resolve().parents[1]


def admin_url() -> str:
    url = os.environ.get("LRS_TEST_DATABASE_URL")
    if url:
        return as_asyncpg(url)
    # A throwaway embedded server: stopped and deleted when this process exits.
    pgdata = Path(tempfile.mkdtemp(prefix="lrs-test-")) / "pgdata"
    return as_asyncpg(pgserver().get_server(pgdata, cleanup_mode="delete").get_uri())


def pg_tool(name: str, database_url: str) -> str:
    """A PostgreSQL client program (pg_dump, pg_restore, psql) of the server's major version:
    the machine's, or the one the embedded server ships."""
    engine_url = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    server = subprocess.run(
        [shutil.which("psql") or "psql", engine_url, "-Atc", "SHOW server_version_num"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    major = server[:-4] if server.isdigit() else ""
    bundled = Path(pgserver().__file__).parent
    for candidate in [shutil.which(name), *sorted(str(p) for p in bundled.glob(f"pginstall*/bin/{name}"))]:
        if candidate is None:
            continue
        version = subprocess.run([candidate, "--version"], capture_output=True, text=True, check=False).stdout
        if major and f" {major}." in version:
            return candidate
    raise AssertionError(f"no {name} for PostgreSQL {major or '?'} on this machine")


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


def create_database() -> tuple[str, str]:
    """A new, empty database: (its URL, the admin URL to drop it with)."""
    admin = admin_url()
    name = f"lrs_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_create_database(admin, name))
    return make_url(admin).set(database=name).render_as_string(hide_password=False), admin


@contextmanager
def own_databases(count: int) -> Iterator[list[str]]:
    """``count`` new databases for the block (a second LRS's, say), dropped afterwards."""
    made = [create_database() for _ in range(count)]
    try:
        yield [url for url, _ in made]
    finally:
        for url, admin in made:
            drop_database(url, admin)


def drop_database(url: str, admin: str) -> None:
    asyncio.run(_drop_database(admin, make_url(url).database or ""))


async def database_now(database_url: str) -> datetime:
    """The database's clock, which stamps `stored` and document times (never the test's)."""
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            now: datetime = (await conn.execute(text("SELECT clock_timestamp()"))).scalar_one()
            return now
    finally:
        await engine.dispose()


async def rollups_folded(database_url: str, timeout: float = 30) -> None:
    """Wait until the background worker has folded every stored statement into the rollups."""
    engine = create_async_engine(database_url)
    try:
        deadline = time.monotonic() + timeout
        while True:
            async with engine.connect() as conn:
                waiting = (await conn.execute(text("SELECT count(*) FROM rollup_queue"))).scalar_one()
            if waiting == 0:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{waiting} write transactions still not folded after {timeout} s")
            await asyncio.sleep(0.05)
    finally:
        await engine.dispose()


def metric(page: str, name: str) -> float | None:
    """A sample from a Prometheus text page (/metrics), labels or not; None when absent."""
    for line in page.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


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
    log_path: str

    @property
    def xapi(self) -> str:
        return self.url + "/xapi"


def start_server(database_url: str, port: int | None = None, **settings: str) -> Server:
    """The LRS on a free port (or ``port``, to start one again where it was)."""
    port = port or free_port()
    env = {
        **os.environ,
        "LRS_DATABASE_URL": database_url,
        "LRS_CREDENTIAL_CACHE_SECONDS": "0",
        # Every test client is 127.0.0.1; the limiter has a test of its own.
        "LRS_AUTH_FAILURES_PER_MINUTE": "10000",
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
                return Server(url, database_url, process, log.name)
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"server did not start; see {log.name}")


@contextmanager
def running_server(database_url: str, **settings: str) -> Iterator[Server]:
    """A server with these settings (``LRS_<NAME>``) for the block, stopped afterwards."""
    srv = start_server(database_url, **settings)
    try:
        yield srv
    finally:
        stop_server(srv)


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(10)
    except subprocess.TimeoutExpired:
        server.process.kill()


def new_store(database_url: str, prefix: str, **settings: str) -> str:
    """A new store named ``prefix-<random>``, with these store settings, made by the CLI."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    run_cli(database_url, "store", "create", name)
    if settings:
        assignments = [a for k, v in settings.items() for a in ("--set", f"{k}={v}")]
        run_cli(database_url, "store", "settings", name, *assignments)
    return name


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
