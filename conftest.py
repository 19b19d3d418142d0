"""Shared fixtures: a fresh database, a real server over HTTP, and credentials made by the CLI.

The database comes from ``LRS_TEST_DATABASE_URL`` (a server where we may create databases);
without it, an embedded PostgreSQL is started in a temporary directory.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from hypothesis import settings
from tests.harness import (
    Cred,
    Server,
    create_database,
    drop_database,
    make_credential,
    running_server,
)

# CI draws the same examples every run, so a red run is reproducible and never chance.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A new, empty database for this test session, dropped afterwards."""
    url, admin = create_database()
    try:
        yield url
    finally:
        drop_database(url, admin)


@pytest.fixture(scope="session")
def server(database_url: str) -> Iterator[Server]:
    """The LRS, started as a user would start it, on the session's database."""
    with running_server(database_url) as srv:
        yield srv


@pytest.fixture(scope="session")
def server_1_0_3(database_url: str, server: Server) -> Iterator[Server]:
    """Another server on the same database that serves xAPI 1.0.3 only."""
    with running_server(database_url, xapi_versions="1.0.3") as srv:
        yield srv


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
