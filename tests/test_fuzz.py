"""Schemathesis fuzzes the running server from its committed OpenAPI document: no 500s."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from bench.loadgen import basic
from hypothesis import HealthCheck, settings

from tests.harness import ROOT, Server, make_credential

schema = schemathesis.openapi.from_path(str(ROOT / "openapi" / "openapi.json"))


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx: Any, value: Any) -> bytes:
    """The import route's JSON Lines: whatever was generated, as bytes (lines or not)."""
    return value if isinstance(value, bytes) else str(value).encode()


@pytest.fixture(scope="module")
def target(server: Server) -> dict[str, Any]:
    cred = make_credential(server.database_url, scopes="all,admin,analytics/read,analytics/learners")
    return {"url": server.url, "auth": basic(cred.key, cred.secret)}


@schema.parametrize()
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)
def test_no_input_makes_the_server_fail(case: Any, target: dict[str, Any]) -> None:
    case.headers = {**(case.headers or {}), "Authorization": target["auth"]}
    if case.path.startswith("/xapi/") and case.path != "/xapi/about":
        case.headers["X-Experience-API-Version"] = "2.0.0"
    response = case.call(base_url=target["url"], timeout=20)
    assert response.status_code < 500, (case.method, case.path, response.text[:300])
