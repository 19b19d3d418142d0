"""Stores, credentials, scopes and isolation: the admin API, the CLI, and every route's scope."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from lrs.scopes import ALL_SCOPES
from tests.factories import activity, agent, statement, unique
from tests.harness import Server, make_credential, rollups_folded, run_cli, start_server, stop_server
from tests.store_scope import STORE_SCOPED

V2 = {"X-Experience-API-Version": "2.0.0"}


@pytest.fixture(scope="module")
async def admin(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    cred = make_credential(server.database_url, scopes="admin", label="ops")
    async with httpx.AsyncClient(base_url=server.url, auth=cred.auth, timeout=30) as c:
        c.key = cred.key  # type: ignore[attr-defined]
        yield c


async def new_store(admin: httpx.AsyncClient) -> str:
    name = f"kommune-{unique()}"
    r = await admin.post("/admin/stores", json={"name": name})
    assert r.status_code == 201, r.text
    return name


async def new_credential(
    admin: httpx.AsyncClient, store: str, scopes: list[str], **extra: Any
) -> tuple[str, str]:
    r = await admin.post(f"/admin/stores/{store}/credentials", json={"scopes": scopes, **extra})
    assert r.status_code == 201, r.text
    body = r.json()
    return body["key"], body["secret"]


async def test_admin_routes_need_the_admin_scope(server, credential):
    async with httpx.AsyncClient(base_url=server.url) as c:
        assert (await c.get("/admin/stores")).status_code == 401
        r = await c.get("/admin/stores", auth=credential.auth)  # `all` is not `admin`
        assert r.status_code == 403 and "admin" in r.json()["message"]


async def test_store_lifecycle(admin):
    name = await new_store(admin)
    assert (await admin.post("/admin/stores", json={"name": name})).status_code == 409
    assert (await admin.post("/admin/stores", json={"name": "bad name!"})).status_code == 400
    listed = (await admin.get("/admin/stores")).json()
    assert name in [s["name"] for s in listed] and "default" in [s["name"] for s in listed]
    renamed = f"{name}-ny"
    r = await admin.patch(f"/admin/stores/{name}", json={"name": renamed})
    assert r.status_code == 200 and r.json()["name"] == renamed
    assert (await admin.get(f"/admin/stores/{name}")).status_code == 404
    settings = (await admin.get(f"/admin/stores/{renamed}/settings")).json()
    assert settings["min_group_size"] == 5
    r = await admin.put(
        f"/admin/stores/{renamed}/settings",
        json={**settings, "min_group_size": 10, "max_document_bytes": 100},
    )
    assert r.status_code == 200 and r.json()["min_group_size"] == 10
    r = await admin.put(f"/admin/stores/{renamed}/settings", json={"min_group_size": 0})
    assert r.status_code == 400
    r = await admin.put(f"/admin/stores/{renamed}/settings", json={"colour": "blue"})
    assert r.status_code == 400
    assert (await admin.delete("/admin/stores/default")).status_code == 409
    assert (await admin.delete(f"/admin/stores/{renamed}")).status_code == 204
    assert (await admin.get(f"/admin/stores/{renamed}")).status_code == 404


async def test_deleting_a_store_leaves_none_of_its_rows(admin, server):
    """Most tables go with the store's row by their foreign key; statements and their index
    have none and are deleted on their own. Either way, none of the store's rows is left in
    any table."""
    store = await new_store(admin)
    key, secret = await new_credential(admin, store, ["all"])
    course = activity()
    async with httpx.AsyncClient(base_url=server.xapi, auth=(key, secret), headers=V2) as c:
        sent = [statement(obj=course) for _ in range(3)]
        assert (await c.post("/statements", json=sent)).status_code == 200
        params = {"activityId": course["id"], "agent": json.dumps(agent()), "stateId": "s"}
        assert (await c.put("/activities/state", params=params, json={"a": 1})).status_code == 204
    await rollups_folded(server.database_url)
    engine = create_async_engine(server.database_url)

    async def rows_of(store_id: int) -> dict[str, int]:
        async with engine.connect() as conn:
            return {
                table: (
                    await conn.execute(
                        text(f"SELECT count(*) FROM {table} WHERE store_id = :s"), {"s": store_id}
                    )
                ).scalar_one()
                for table in sorted(STORE_SCOPED)
            }

    try:
        async with engine.connect() as conn:
            store_id = (
                await conn.execute(text("SELECT id FROM stores WHERE name = :n"), {"n": store})
            ).scalar_one()
        before = await rows_of(store_id)
        for table in ("statements", "statement_index", "analytics_hourly", "analytics_progress", "documents"):
            assert before[table] > 0, f"the store wrote no {table} rows"
        assert (await admin.delete(f"/admin/stores/{store}")).status_code == 204
        assert {t: n for t, n in (await rows_of(store_id)).items() if n} == {}
    finally:
        await engine.dispose()


async def test_store_settings_apply_to_requests(admin, server):
    store = await new_store(admin)
    key, secret = await new_credential(admin, store, ["all"])
    await admin.put(f"/admin/stores/{store}/settings", json={"max_document_bytes": 10})
    params = {"activityId": activity()["id"], "agent": json.dumps(agent()), "stateId": "s"}
    async with httpx.AsyncClient(base_url=server.xapi, auth=(key, secret), headers=V2) as c:
        r = await c.put(
            "/activities/state", params=params, content=b"x" * 11, headers={"Content-Type": "text/plain"}
        )
        assert r.status_code == 413


async def test_credential_lifecycle(admin, server):
    store = await new_store(admin)
    authority = {
        "objectType": "Agent",
        "name": "Kurs AS",
        "account": {"homePage": "https://kurs.example.no", "name": "lms"},
    }
    key, secret = await new_credential(
        admin, store, ["statements/write", "statements/read"], label="Kurs AS LMS", authority=authority
    )
    listed = (await admin.get(f"/admin/stores/{store}/credentials")).json()
    assert [c["key"] for c in listed] == [key]
    assert "secret" not in listed[0] and listed[0]["authority"] == authority
    async with httpx.AsyncClient(base_url=server.xapi, headers=V2) as c:
        [sid] = (await c.post("/statements", json=statement(), auth=(key, secret))).json()
        got = (await c.get("/statements", params={"statementId": sid}, auth=(key, secret))).json()
        assert got["authority"] == authority
        rotated = (await admin.post(f"/admin/stores/{store}/credentials/{key}/rotate")).json()
        assert (await c.get("/statements", auth=(key, secret))).status_code == 401
        assert (await c.get("/statements", auth=(key, rotated["secret"]))).status_code == 200
        assert (await admin.delete(f"/admin/stores/{store}/credentials/{key}")).status_code == 204
        assert (await c.get("/statements", auth=(key, rotated["secret"]))).status_code == 401
    assert (await admin.get(f"/admin/stores/{store}/credentials/{key}")).json()["revoked"]
    assert (await admin.get(f"/admin/stores/default/credentials/{key}")).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        {"scopes": []},
        {"scopes": ["everything"]},
        {"scopes": ["all"], "authority": {"name": "x"}},
        {"scopes": ["all"], "extra": 1},
    ],
)
async def test_bad_credential_requests_are_400(admin, body):
    store = await new_store(admin)
    r = await admin.post(f"/admin/stores/{store}/credentials", json=body)
    assert r.status_code == 400, r.text


async def test_expired_credential_is_refused(admin, server):
    store = await new_store(admin)
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    r = await admin.post(f"/admin/stores/{store}/credentials", json={"scopes": ["all"], "expires": past})
    assert r.status_code == 400 and "expires" in r.json()["message"]
    soon = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    key, secret = await new_credential(admin, store, ["all"], expires=soon)
    async with httpx.AsyncClient(base_url=server.xapi, headers=V2) as c:
        assert (await c.get("/statements", auth=(key, secret))).status_code == 200
        await asyncio.sleep(2.5)  # the server's clock, on this machine, passes the expiry
        r = await c.get("/statements", auth=(key, secret))
        assert r.status_code == 401 and "expired" in r.json()["message"]


async def test_revocation_reaches_another_process_at_once(admin, database_url):
    """A second server that has the credential cached for minutes still refuses it at once."""
    store = await new_store(admin)
    key, secret = await new_credential(admin, store, ["all"])
    other = start_server(database_url, credential_cache_seconds="600")
    try:
        async with httpx.AsyncClient(base_url=other.xapi, headers=V2, auth=(key, secret)) as c:
            assert (await c.get("/statements")).status_code == 200  # now cached there
            assert (await admin.delete(f"/admin/stores/{store}/credentials/{key}")).status_code == 204
            statuses = []
            for _ in range(20):  # a notification takes milliseconds; allow up to 2 s
                statuses.append((await c.get("/statements")).status_code)
                if statuses[-1] == 401:
                    break
                await asyncio.sleep(0.1)
            assert statuses[-1] == 401, statuses
    finally:
        stop_server(other)


async def test_audit_trail_records_who_did_what(admin):
    store = await new_store(admin)
    key, _ = await new_credential(admin, store, ["statements/read"])
    await admin.post(f"/admin/stores/{store}/credentials/{key}/rotate")
    await admin.delete(f"/admin/stores/{store}/credentials/{key}")
    entries = (await admin.get("/admin/audit", params={"store": store})).json()
    assert [(e["action"], e["target"]) for e in entries] == [
        ("credential.revoke", key),
        ("credential.rotate", key),
        ("credential.create", key),
        ("store.create", None),
    ]
    assert {e["actor"] for e in entries} == {admin.key}
    older = (
        await admin.get("/admin/audit", params={"store": store, "limit": 1, "before": entries[0]["id"]})
    ).json()
    assert [e["action"] for e in older] == ["credential.rotate"]


# --- scopes, route by route -------------------------------------------------------------------

READ = {"statements/read", "statements/read/mine", "all/read", "all"}
DEFINITIONS = {"all/read", "all", "statements/read", "define", "profile", "state"}


def _routes(region: str) -> list[tuple[str, str, dict[str, Any], set[str]]]:
    a = json.dumps(agent())
    act = activity()["id"]
    state = {"activityId": act, "agent": a, "stateId": "s"}
    prof = {"activityId": act, "profileId": "p"}
    agprof = {"agent": a, "profileId": "p"}
    return [
        ("GET", "/xapi/statements", {}, READ),
        ("POST", "/xapi/statements", {}, {"statements/write", "all"}),
        (
            "PUT",
            "/xapi/statements",
            {"statementId": "0f2e9f4c-5d3b-4b39-9d4c-2b7c1c5f5d11"},
            {"statements/write", "all"},
        ),
        ("GET", "/xapi/activities/state", state, {"state", "all/read", "all"}),
        ("PUT", "/xapi/activities/state", state, {"state", "all"}),
        ("POST", "/xapi/activities/state", state, {"state", "all"}),
        ("DELETE", "/xapi/activities/state", state, {"state", "all"}),
        ("GET", "/xapi/activities/profile", prof, {"profile", "all/read", "all"}),
        ("PUT", "/xapi/activities/profile", prof, {"profile", "all"}),
        ("DELETE", "/xapi/activities/profile", prof, {"profile", "all"}),
        ("GET", "/xapi/agents/profile", agprof, {"profile", "all/read", "all"}),
        ("POST", "/xapi/agents/profile", agprof, {"profile", "all"}),
        ("GET", "/xapi/activities", {"activityId": act}, DEFINITIONS),
        ("GET", "/xapi/agents", {"agent": a}, DEFINITIONS),
        ("GET", "/xapi/about", {}, set(ALL_SCOPES)),
        ("GET", "/admin/stores", {}, {"admin"}),
        ("GET", "/admin/audit", {}, {"admin"}),
        ("GET", "/admin/stores/default/credentials", {}, {"admin"}),
        ("GET", "/admin/regions", {}, {"admin"}),
        ("GET", "/analytics/completion", {"activity": act}, {"analytics/read", "all"}),
        ("GET", "/analytics/activities", {}, {"analytics/read", "all"}),
        ("GET", "/analytics/learners", {"activity": act}, {"analytics/learners"}),
        ("GET", "/analytics/assignments/learners", {"activity": act}, {"analytics/learners"}),
        ("GET", "/analytics/cohorts", {}, {"cohorts"}),
        ("GET", f"/regions/{region}/analytics/completion", {"activity": act}, {"region/analytics"}),
        ("GET", f"/regions/{region}/analytics/activities", {}, {"region/analytics"}),
    ]


async def test_every_route_enforces_its_scopes(admin, server):
    store = await new_store(admin)
    region = f"region-{unique()}"
    assert (await admin.post("/admin/regions", json={"name": region})).status_code == 201
    creds = {
        scope: await new_credential(admin, store, [scope])
        for scope in sorted(ALL_SCOPES - {"region/analytics"})
    }
    made = (await admin.post(f"/admin/regions/{region}/credentials", json={})).json()
    creds["region/analytics"] = (made["key"], made["secret"])
    failures = []
    async with httpx.AsyncClient(base_url=server.url, headers=V2) as c:
        for method, path, params, allowed in _routes(region):
            for scope, auth in creds.items():
                body: dict[str, Any] = {}
                if path == "/xapi/statements" and method in ("POST", "PUT"):
                    body = {"json": statement()}
                elif method in ("PUT", "POST"):
                    body = {"json": {"a": 1}, "headers": {"If-None-Match": "*"}}
                r = await c.request(method, path, params=params, auth=auth, **body)
                refused = r.status_code == 403
                if refused == (scope in allowed) or r.status_code in (401, 500):
                    failures.append((method, path, scope, r.status_code))
    assert failures == []


# --- isolation --------------------------------------------------------------------------------


async def test_a_store_never_sees_another_stores_data(admin, server):
    """Statements, documents, attachments, agents, activities and more links stay in their store."""
    a_store, b_store = await new_store(admin), await new_store(admin)
    a = await new_credential(admin, a_store, ["all"])
    b = await new_credential(admin, b_store, ["all"])
    kari, course = agent(), activity()
    content = b"Kari's certificate"
    sha = hashlib.sha256(content).hexdigest()
    meta = {
        "usageType": "http://e.no/cert",
        "display": {"nb": "Bevis"},
        "contentType": "text/plain",
        "length": len(content),
        "sha2": sha,
    }
    boundary = "bnd"
    body = (
        f"--{boundary}\r\nContent-Type: application/json\r\n\r\n".encode()
        + json.dumps(
            statement(
                actor=kari, obj=dict(course, definition={"name": {"nb": "Hemmelig kurs"}}), attachments=[meta]
            )
        ).encode()
        + f"\r\n--{boundary}\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: "
        f"binary\r\nX-Experience-API-Hash: {sha}\r\n\r\n".encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    async with httpx.AsyncClient(base_url=server.xapi, headers=V2) as c:
        r = await c.post(
            "/statements",
            content=body,
            auth=a,
            headers={"Content-Type": f"multipart/mixed; boundary={boundary}"},
        )
        assert r.status_code == 200, r.text
        await c.post("/statements", json=[statement(actor=kari, obj=course) for _ in range(3)], auth=a)
        state = {"activityId": course["id"], "agent": json.dumps(kari), "stateId": "bookmark"}
        await c.put("/activities/state", params=state, json={"page": 7}, auth=a)
        more = (await c.get("/statements", params={"limit": 1}, auth=a)).json()["more"]

        # Store B, even knowing every identifier, finds nothing of A's.
        assert (await c.get("/statements", params={"agent": json.dumps(kari)}, auth=b)).json()[
            "statements"
        ] == []
        assert (await c.get(more.removeprefix("/xapi"), auth=b)).status_code == 400
        assert (await c.get("/activities/state", params=state, auth=b)).status_code == 404
        got = (await c.get("/activities", params={"activityId": course["id"]}, auth=b)).json()
        assert "definition" not in got
        person = (await c.get("/agents", params={"agent": json.dumps(kari)}, auth=b)).json()
        assert "name" not in person
        # B declares the same attachment hash (by fileUrl) and asks for attachments:
        # A's bytes must not come back.
        mine = dict(meta, fileUrl="https://files.example.no/x")
        [sid] = (await c.post("/statements", json=statement(attachments=[mine]), auth=b)).json()
        r = await c.get("/statements", params={"statementId": sid, "attachments": "true"}, auth=b)
        assert r.status_code == 200 and content not in r.content


# --- the CLI ----------------------------------------------------------------------------------


def test_cli_store_and_credential_commands(server):
    name = f"kommune-{unique()}"
    run_cli(server.database_url, "store", "create", name)
    out = run_cli(
        server.database_url,
        "store",
        "settings",
        name,
        "--set",
        "min_group_size=8",
        "--set",
        'completion_verbs=["http://adlnet.gov/expapi/verbs/completed"]',
        "--json",
    )
    assert json.loads(out.stdout)["min_group_size"] == 8
    bad = run_cli(server.database_url, "store", "settings", name, "--set", "min_group_size=0", check=False)
    assert bad.returncode != 0
    cred = make_credential(server.database_url, scopes="statements/read", store=name)
    rotated = json.loads(run_cli(server.database_url, "credentials", "rotate", cred.key, "--json").stdout)
    r = httpx.get(server.xapi + "/statements", auth=(cred.key, rotated["secret"]), headers=V2)
    assert r.status_code == 200
    run_cli(server.database_url, "store", "rename", name, f"{name}-ny")
    assert run_cli(server.database_url, "store", "delete", f"{name}-ny", check=False).returncode == 2
    run_cli(server.database_url, "store", "delete", f"{name}-ny", "--yes")
    # The server has the credential cached; the deletion reaches it by notification, which
    # takes milliseconds: allow up to 2 s, as for revocation.
    statuses = []
    for _ in range(20):
        r = httpx.get(server.xapi + "/statements", auth=(cred.key, rotated["secret"]), headers=V2)
        statuses.append(r.status_code)
        if r.status_code == 401:
            break
        time.sleep(0.1)
    assert statuses[-1] == 401, statuses
    stores = json.loads(run_cli(server.database_url, "store", "list", "--json").stdout)
    assert name not in {s["name"] for s in stores}


# --- the admin API and the CLI run the same operations ------------------------------------------


async def audit_entry(admin: httpx.AsyncClient, store: str, actor: str) -> dict[str, Any]:
    """The newest audit entry about ``store``, without its id, time and actor."""
    [entry] = (await admin.get("/admin/audit", params={"store": store, "limit": 1})).json()
    assert entry["actor"] == actor
    return {k: v for k, v in entry.items() if k not in ("id", "at", "actor")}


async def test_each_admin_operation_is_the_same_through_the_api_and_the_cli(admin, server):
    """Each operation, once through /admin and once through `lrs`, on twin stores: the same
    result and the same audit entry (only the actor differs)."""
    url = server.database_url
    api_store, cli_store = f"api-{unique()}", f"cli-{unique()}"

    def cli(*args: str) -> Any:
        out = run_cli(url, *args).stdout
        return json.loads(out) if "--json" in args else out

    # create
    made_api = (await admin.post("/admin/stores", json={"name": api_store})).json()
    made_cli = cli("store", "create", cli_store, "--json")
    assert made_api["name"] == api_store and made_cli["name"] == cli_store
    created_api = await audit_entry(admin, api_store, admin.key)
    created_cli = await audit_entry(admin, cli_store, "cli")
    assert (created_api["action"], created_cli["action"]) == ("store.create", "store.create")

    # rename to its own name succeeds both ways, and so does a real rename
    for a, c in ((api_store, cli_store), (api_store + "-x", cli_store + "-x")):
        r = await admin.patch(f"/admin/stores/{api_store}", json={"name": a})
        assert r.status_code == 200 and r.json()["name"] == a
        assert cli("store", "rename", cli_store, c, "--json")["name"] == c
        api_store, cli_store = a, c
        entries = await audit_entry(admin, api_store, admin.key), await audit_entry(admin, cli_store, "cli")
        assert [e["action"] for e in entries] == ["store.rename"] * 2

    # settings
    r = await admin.put(f"/admin/stores/{api_store}/settings", json={"min_group_size": 3, "timezone": "UTC"})
    via_cli = cli(
        "store", "settings", cli_store, "--set", "min_group_size=3", "--set", "timezone=UTC", "--json"
    )
    assert r.json() == via_cli
    api_entry, cli_entry = (
        await audit_entry(admin, api_store, admin.key),
        await audit_entry(admin, cli_store, "cli"),
    )
    assert {**api_entry, "store": None} == {**cli_entry, "store": None}
    assert api_entry["details"] == {"min_group_size": 3, "timezone": "UTC"}

    # credentials: create, rotate, revoke, each audited under its store
    keys = {}
    for store, via in ((api_store, "api"), (cli_store, "cli")):
        if via == "api":
            keys[via] = (
                await admin.post(
                    f"/admin/stores/{store}/credentials", json={"scopes": ["statements/read"], "label": "LMS"}
                )
            ).json()["key"]
        else:
            keys[via] = cli(
                "credentials",
                "create",
                "--store",
                store,
                "--scopes",
                "statements/read",
                "--label",
                "LMS",
                "--json",
            )["key"]
    api_entry, cli_entry = (
        await audit_entry(admin, api_store, admin.key),
        await audit_entry(admin, cli_store, "cli"),
    )
    assert {**api_entry, "store": None, "target": None} == {**cli_entry, "store": None, "target": None}
    assert (api_entry["target"], cli_entry["target"]) == (keys["api"], keys["cli"])

    rotated = (await admin.post(f"/admin/stores/{api_store}/credentials/{keys['api']}/rotate")).json()
    assert rotated["key"] == keys["api"] and rotated["secret"]
    assert cli("credentials", "rotate", keys["cli"], "--json")["secret"]
    api_entry, cli_entry = (
        await audit_entry(admin, api_store, admin.key),
        await audit_entry(admin, cli_store, "cli"),
    )
    assert (api_entry["action"], api_entry["store"], cli_entry["action"], cli_entry["store"]) == (
        "credential.rotate",
        api_store,
        "credential.rotate",
        cli_store,
    )

    assert (await admin.delete(f"/admin/stores/{api_store}/credentials/{keys['api']}")).status_code == 204
    cli("credentials", "revoke", keys["cli"])
    api_entry, cli_entry = (
        await audit_entry(admin, api_store, admin.key),
        await audit_entry(admin, cli_store, "cli"),
    )
    assert (api_entry["action"], api_entry["store"], cli_entry["action"], cli_entry["store"]) == (
        "credential.revoke",
        api_store,
        "credential.revoke",
        cli_store,
    )
    listed_api = (await admin.get(f"/admin/stores/{api_store}/credentials")).json()
    listed_cli = cli("credentials", "list", "--store", cli_store, "--json")
    assert listed_api[0]["revoked"] and listed_cli[0]["revoked"]

    # delete
    assert (await admin.delete(f"/admin/stores/{api_store}")).status_code == 204
    cli("store", "delete", cli_store, "--yes")
    api_entry, cli_entry = (
        await audit_entry(admin, api_store, admin.key),
        await audit_entry(admin, cli_store, "cli"),
    )
    assert api_entry["action"] == cli_entry["action"] == "store.delete"
    assert (await admin.get(f"/admin/stores/{cli_store}")).status_code == 404
