"""Forwarding between two running LRSs, each with a database of its own: nothing lost while
the target is down, nothing changed, pseudonymised where asked; a worker killed mid-batch
loses nothing; refused batches become dead letters that can be retried or dropped."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.factories import COMPLETED, PASSED, agent, voiding
from tests.factories import statement_with_id as statement
from tests.harness import (
    Cred,
    Server,
    make_credential,
    new_store,
    own_databases,
    run_cli,
    running_server,
    start_server,
    stop_server,
)

V2 = {"X-Experience-API-Version": "2.0.0"}
FAST_RETRIES = {"forward_retry_seconds": "0.2", "forward_retry_max_seconds": "1"}
FIRE = "https://kurs.example.no/brann"
OTHER = "https://kurs.example.no/annet"


@pytest.fixture(scope="module")
def databases() -> Iterator[list[str]]:
    with own_databases(2) as made:
        yield made


@pytest.fixture(scope="module")
def target(databases: list[str]) -> Iterator[Server]:
    with running_server(databases[1]) as srv:
        yield srv


@pytest.fixture(scope="module")
def source(databases: list[str]) -> Iterator[Server]:
    with running_server(databases[0], **FAST_RETRIES) as srv:
        yield srv


def target_store(target: Server, prefix: str) -> Cred:
    """A new store in the target, and a credential to write and read it."""
    name = new_store(target.database_url, prefix)
    return make_credential(target.database_url, "statements/write,statements/read", name)


async def everything(server: Server, cred: Cred) -> list[dict[str, Any]]:
    """Every statement a store serves, following `more`."""
    out: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=server.url, auth=cred.auth, headers=V2, timeout=60) as c:
        url: str | None = "/xapi/statements?limit=1000"
        while url:
            body = (await c.get(url)).json()
            out.extend(body["statements"])
            url = body["more"] or None
    return out


async def rules(server: Server, store: str) -> dict[str, dict[str, Any]]:
    admin = make_credential(server.database_url, "admin")
    async with httpx.AsyncClient(base_url=server.url, auth=admin.auth) as c:
        r = await c.get(f"/admin/stores/{store}/forwarding")
    assert r.status_code == 200, r.text
    return {rule["name"]: rule for rule in r.json()}


async def drained(server: Server, store: str, timeout: float = 120) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        found = await rules(server, store)
        if all(r["pending"] == 0 for r in found.values()):
            return found
        assert time.monotonic() < deadline, found
        await asyncio.sleep(0.3)


def metric(page: str, name: str, store: str, rule: str) -> float:
    for line in page.splitlines():
        if line.startswith(name + "{") and f'store="{store}"' in line and f'rule="{rule}"' in line:
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} for {store}/{rule} is not in /metrics")


def same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal but for what each LRS sets itself."""
    drop = ("stored", "authority")
    return {k: v for k, v in a.items() if k not in drop} == {k: v for k, v in b.items() if k not in drop}


async def add_rule(server: Server, store: str, **spec: Any) -> dict[str, Any]:
    admin = make_credential(server.database_url, "admin")
    async with httpx.AsyncClient(base_url=server.url, auth=admin.auth) as c:
        r = await c.post(f"/admin/stores/{store}/forwarding", json=spec)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_nothing_lost_while_the_target_is_down(source, target):
    kommune = new_store(source.database_url, "kommune")
    vendor = make_credential(source.database_url, "statements/write,statements/read", kommune, "Kurs AS")
    plain_cred = target_store(target, "plain")
    pseudo_cred = target_store(target, "pseudo")
    await add_rule(
        source,
        kommune,
        name="fire-only",
        endpoint=target.xapi,
        key=plain_cred.key,
        secret=plain_cred.secret,
        filter={"activities": [FIRE]},
        max_attempts=100,
    )
    shown = await add_rule(
        source,
        kommune,
        name="region",
        endpoint=target.xapi,
        key=pseudo_cred.key,
        secret=pseudo_cred.secret,
        pseudonymise=True,
        pseudonym_home_page="https://region.example.no/pseudonym",
        max_attempts=100,
    )
    assert "secret" not in shown and shown["key"] == pseudo_cred.key

    learners = [agent(f"ansatt-{n}") for n in range(50)]
    sent: list[dict[str, Any]] = []

    async def post(batch: list[dict[str, Any]]) -> None:
        async with httpx.AsyncClient(base_url=source.xapi, auth=vendor.auth, headers=V2, timeout=60) as c:
            r = await c.post("/statements", json=batch)
        assert r.status_code == 200, r.text
        sent.extend(batch)

    def batch(start: int) -> list[dict[str, Any]]:
        return [
            statement(
                actor=learners[n % 50],
                verb=PASSED if n % 3 else COMPLETED,
                obj={"objectType": "Activity", "id": f"{FIRE}/modul{n % 7}" if n % 2 else f"{OTHER}/{n % 5}"},
                context={"instructor": learners[(n + 1) % 50]},
            )
            for n in range(start, start + 500)
        ]

    for start in range(0, 10_000, 500):
        await post(batch(start))
    stop_server(target)
    for start in range(10_000, 20_000, 500):
        await post(batch(start))
    await post([{**voiding(sent[1]["id"]), "id": str(uuid.uuid4())}])  # sent[1] is a fire module
    await asyncio.sleep(2)
    failing = await rules(source, kommune)
    assert failing["fire-only"]["failed"] > 0 and failing["fire-only"]["last_error"]
    assert failing["fire-only"]["pending"] > 0 and failing["fire-only"]["lag_seconds"] > 0
    # The target again, on the same port (the fixture stops it at the end).
    target.process = start_server(target.database_url, port=int(target.url.rsplit(":", 1)[1])).process
    done = await drained(source, kommune)
    matching = [s for s in sent if s["object"]["id"].startswith(FIRE) or s["verb"]["id"].endswith("voided")]
    got = await everything(target, plain_cred)
    assert len(got) == len(matching) - 1  # the voided one is not listed, but is there
    # As the source stores them (with its timestamps and version), but for stored and authority.
    stored = {s["id"]: s for s in await everything(source, vendor)}
    assert all(same(s, stored[s["id"]]) for s in got)
    async with (
        httpx.AsyncClient(base_url=target.xapi, auth=plain_cred.auth, headers=V2) as c,
        httpx.AsyncClient(base_url=source.xapi, auth=vendor.auth, headers=V2) as mine,
    ):
        voided = await c.get("/statements", params={"voidedStatementId": sent[1]["id"]})
        original = await mine.get("/statements", params={"voidedStatementId": sent[1]["id"]})
        assert voided.status_code == 200 and same(voided.json(), original.json())
    assert done["fire-only"]["sent"] == len(matching)

    pseudo = await everything(target, pseudo_cred)
    assert len(pseudo) == len(sent) - 1
    names = set()
    originals = {s["id"]: s for s in sent}
    for s in pseudo:
        if s["verb"]["id"].endswith("voided"):
            continue
        actor = s["actor"]
        assert set(actor) == {"objectType", "account"} and "name" not in actor
        assert actor["account"]["homePage"] == "https://region.example.no/pseudonym"
        assert re.fullmatch(r"[0-9a-f]{64}", actor["account"]["name"])
        assert s["context"]["instructor"]["account"]["name"] != actor["account"]["name"]
        original = originals[s["id"]]
        assert s["verb"] == original["verb"] and s["object"] == original["object"]
        names.add((original["actor"]["mbox"], actor["account"]["name"]))
    # One pseudonym per learner, the same in every statement.
    assert len(names) == 50 and len({n for _, n in names}) == 50

    async with httpx.AsyncClient(base_url=source.url) as c:
        metrics = (await c.get("/metrics")).text
        ready = (await c.get("/health/ready")).json()
    assert metric(metrics, "lrs_forward_sent_statements", kommune, "fire-only") == len(matching)
    assert metric(metrics, "lrs_forward_pending_statements", kommune, "region") == 0
    assert any(f["rule"] == "region" and f["pending"] == 0 for f in ready["forwarding"])


async def test_a_worker_killed_mid_batch_loses_nothing(databases, target):
    own = start_server(databases[0], **FAST_RETRIES)
    try:
        kommune = new_store(own.database_url, "killed")
        vendor = make_credential(own.database_url, "statements/write", kommune)
        cred = target_store(target, "after-kill")
        await add_rule(
            own, kommune, name="all", endpoint=target.xapi, key=cred.key, secret=cred.secret, batch_size=50
        )
        sent = [statement(actor=agent(f"k-{n % 20}")) for n in range(3000)]
        async with httpx.AsyncClient(base_url=own.xapi, auth=vendor.auth, headers=V2, timeout=60) as c:
            for i in range(0, len(sent), 500):
                assert (await c.post("/statements", json=sent[i : i + 500])).status_code == 200
        # Kill it while it forwards: no goodbye, no cleanup.
        while (await rules(own, kommune))["all"]["sent"] == 0:
            await asyncio.sleep(0.05)
        os.kill(own.process.pid, signal.SIGKILL)
        own.process.wait()
    finally:
        stop_server(own)
    again = start_server(databases[0], **FAST_RETRIES)
    try:
        await drained(again, kommune)
        got = await everything(target, cred)
        assert sorted(s["id"] for s in got) == sorted(s["id"] for s in sent)
    finally:
        stop_server(again)


async def test_refused_batches_become_dead_letters(source, target):
    kommune = new_store(source.database_url, "dead")
    vendor = make_credential(source.database_url, "statements/write", kommune)
    cred = target_store(target, "dead")
    await add_rule(
        source, kommune, name="wrong", endpoint=target.xapi, key=cred.key, secret="not-it", max_attempts=2
    )
    sent = [statement() for _ in range(5)]
    async with httpx.AsyncClient(base_url=source.xapi, auth=vendor.auth, headers=V2) as c:
        assert (await c.post("/statements", json=sent)).status_code == 200
    admin = make_credential(source.database_url, "admin")
    async with httpx.AsyncClient(base_url=source.url, auth=admin.auth) as c:
        base = f"/admin/stores/{kommune}/forwarding/wrong"
        deadline = time.monotonic() + 30
        while not (dead := (await c.get(base + "/dead")).json()):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.2)
        assert dead[0]["statements"] == 5 and dead[0]["error"].startswith("401")
        assert (await c.get(base)).json()["dead"] == 1
        # The right secret, then the dead letter again: delivered.
        r = await c.patch(base, json={"secret": cred.secret})
        assert r.status_code == 200, r.text
        assert (await c.post(f"{base}/dead/{dead[0]['id']}/retry")).status_code == 204
        await drained(source, kommune)
        assert sorted(s["id"] for s in await everything(target, cred)) == sorted(s["id"] for s in sent)
        assert (await c.get(base + "/dead")).json() == []
        assert (await c.post(f"{base}/dead/999999/retry")).status_code == 404
        entries = (await c.get("/admin/audit", params={"store": kommune})).json()
        assert {"forward.create", "forward.change", "forward.retry"} <= {e["action"] for e in entries}
        assert all("not-it" not in str(e) and cred.secret not in str(e) for e in entries)


def test_cli_manages_rules(source, target):
    kommune = new_store(source.database_url, "cli")
    cred = target_store(target, "cli")
    run_cli(
        source.database_url,
        "forward",
        "add",
        "--store",
        kommune,
        "--name",
        "fylket",
        "--endpoint",
        target.xapi,
        "--key",
        cred.key,
        "--secret",
        cred.secret,
        "--verbs",
        PASSED,
        "--pseudonymise",
    )
    listed = run_cli(source.database_url, "forward", "list", "--store", kommune, "--json").stdout
    assert '"name":"fylket"' in listed.replace(" ", "") and cred.secret not in listed
    run_cli(source.database_url, "forward", "disable", "fylket", "--store", kommune)
    assert '"enabled":false' in run_cli(
        source.database_url, "forward", "list", "--store", kommune, "--json"
    ).stdout.replace(" ", "")
    twice = run_cli(
        source.database_url,
        "forward",
        "add",
        "--store",
        kommune,
        "--name",
        "fylket",
        "--endpoint",
        "ftp://nope",
        "--key",
        "k",
        "--secret",
        "s",
        check=False,
    )
    assert twice.returncode != 0 and "endpoint" in twice.stderr
    run_cli(source.database_url, "forward", "remove", "fylket", "--store", kommune)
    assert (
        run_cli(source.database_url, "forward", "list", "--store", kommune, "--json").stdout.strip() == "[]"
    )
