"""Regions at size: aggregates across many member stores.

    python -m bench.regions [--statements 1000000] [--stores 50] [--database URL] [--keep]
                            [--embedded DIR]

``--statements`` generated statements (20,000 learners, 100 courses of 9 modules, as
bench.leaders fills them) are spread over ``--stores`` stores, each learner in one store
(a municipality's employees), through the LRS, and folded by its worker. All stores share
and join one region. Then every region route is asked for every course with a region
credential, and the same question of one member store (`/analytics/...`) in the same run
as the yardstick. Results go to bench/results/regions.{json,md}.

The database is LRS_TEST_DATABASE_URL's server (default 127.0.0.1:5432), or with
``--embedded DIR`` the product's embedded PostgreSQL with its settings (lrs.embedded).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
from tests.harness import create_database, drop_database, make_credential

from bench.generate import Generator
from bench.leaders import leader_statements
from bench.loadgen import basic, request, run
from bench.run import EMBEDDED, HOST, caught_up, get_many, q, start_lrs, stop, write_results
from lrs.embedded import start_embedded

RESULTS = Path(__file__).resolve().parent / "results"
REGION = "vestland"


def store_names(stores: int) -> list[str]:
    return [f"kommune-{n:02d}" for n in range(stores)]


def batches(stores: int, size: int = 500) -> Iterator[tuple[int, bytes]]:
    """Batches of one store's statements: each learner belongs to one store."""
    buckets: dict[int, list[dict[str, Any]]] = {}
    for s in leader_statements(Generator()):
        store = zlib.crc32(s["actor"]["name"].encode()) % stores
        bucket = buckets.setdefault(store, [])
        bucket.append(s)
        if len(bucket) == size:
            yield store, orjson.dumps(bucket)
            buckets[store] = []


async def set_up(base: str, admin: tuple[str, str], stores: int) -> dict[str, str]:
    """The stores (sharing), each with a writer; the region with every store in it."""
    writers = {}
    async with httpx.AsyncClient(base_url=base, auth=admin, timeout=60) as c:
        for name in store_names(stores):
            assert (await c.post("/admin/stores", json={"name": name})).status_code == 201
            settings = {"region_sharing": True, "region_display_name": name}
            assert (await c.put(f"/admin/stores/{name}/settings", json=settings)).status_code == 200
            made = (
                await c.post(f"/admin/stores/{name}/credentials", json={"scopes": ["statements/write"]})
            ).json()
            writers[name] = basic(made["key"], made["secret"])
    return writers


async def join_region(base: str, admin: tuple[str, str], stores: int) -> tuple[str, str]:
    async with httpx.AsyncClient(base_url=base, auth=admin, timeout=60) as c:
        assert (await c.post("/admin/regions", json={"name": REGION})).status_code == 201
        for name in store_names(stores):
            assert (await c.put(f"/admin/regions/{REGION}/stores/{name}")).status_code == 200
        made = (await c.post(f"/admin/regions/{REGION}/credentials", json={"label": "bench"})).json()
        one = (
            await c.post(
                f"/admin/stores/{store_names(stores)[0]}/credentials", json={"scopes": ["analytics/read"]}
            )
        ).json()
    return basic(made["key"], made["secret"]), basic(one["key"], one["secret"])


async def fill(port: int, writers: dict[str, str], stores: int, statements: int) -> dict[str, Any]:
    source = batches(stores)
    names = store_names(stores)
    host = f"{HOST}:{port}"

    def next_request(_: int) -> bytes:
        store, body = next(source)
        headers = {
            "Authorization": writers[names[store]],
            "X-Experience-API-Version": "2.0.0",
            "Content-Type": "application/json",
        }
        return request("POST", "/xapi/statements", host, body, headers)

    started = time.perf_counter()
    result = await run(HOST, port, next_request, 4, statements // 500, 7200)
    stored = time.perf_counter() - started
    folded = await caught_up(port, limit=7200)
    return {"statements": result.count * 500, "store_s": round(stored, 1), "fold_after_s": folded}


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    if args.embedded is not None:
        os.environ["LRS_TEST_DATABASE_URL"] = start_embedded(args.embedded)
    os.environ.setdefault("LRS_TEST_DATABASE_URL", "postgresql://root@127.0.0.1:5432/root")
    out: dict[str, Any] = {"statements_target": args.statements, "stores": args.stores}
    if args.embedded is not None:
        out["database"] = EMBEDDED
    if args.database:
        url, admin_url = args.database, None
        out["fill"] = "an earlier --keep run of this benchmark"
    else:
        url, admin_url = await asyncio.to_thread(create_database)
        print("database", url, flush=True)
    server, port = start_lrs(url, args.workers)
    base = f"http://{HOST}:{port}"
    try:
        admin = make_credential(url, scopes="admin").auth
        if admin_url is not None:
            writers = await set_up(base, admin, args.stores)
            out["fill"] = await fill(port, writers, args.stores, args.statements)
            print("fill", out["fill"], flush=True)
            region, one_store = await join_region(base, admin, args.stores)
        else:
            async with httpx.AsyncClient(base_url=base, auth=admin, timeout=60) as c:
                made = (await c.post(f"/admin/regions/{REGION}/credentials", json={"label": "bench"})).json()
                one = (
                    await c.post(
                        f"/admin/stores/{store_names(args.stores)[0]}/credentials",
                        json={"scopes": ["analytics/read"]},
                    )
                ).json()
            region, one_store = basic(made["key"], made["secret"]), basic(one["key"], one["secret"])
        courses = [Generator().course(c) for c in range(100)]
        r = f"/regions/{REGION}/analytics"
        asks: dict[str, tuple[list[str], list[str]]] = {
            "completion": (
                [q(r + "/completion", activity=c) for c in courses],
                [q("/analytics/completion", activity=c) for c in courses],
            ),
            "completion_by_store": (
                [q(r + "/completion", activity=c, group_by="store") for c in courses],
                [q("/analytics/completion", activity=c, group_by="platform") for c in courses],
            ),
            "activities": ([r + "/activities"] * 20, ["/analytics/activities"] * 20),
            "engagement_week": (
                [q(r + "/engagement", activity=c, interval="week") for c in courses],
                [q("/analytics/engagement", activity=c, interval="week") for c in courses],
            ),
            "hours": (
                [q(r + "/engagement/hours", activity=c) for c in courses],
                [q("/analytics/engagement/hours", activity=c) for c in courses],
            ),
            "dropoff": (
                [q(r + "/dropoff", activity=c) for c in courses],
                [q("/analytics/dropoff", activity=c) for c in courses],
            ),
            "elements": (
                [q(r + "/elements", activity=c) for c in courses],
                [q("/analytics/elements", activity=c) for c in courses],
            ),
        }
        # One ask at a time: the time of an answer (two cores serve the LRS, PostgreSQL and
        # this load generator; with two at once, each would also wait for the other).
        for name, (regional, single) in asks.items():
            out[f"region_{name}"] = await get_many(port, region, regional, 1, max_seconds=600)
            out[f"one_store_{name}"] = await get_many(port, one_store, single, 1, max_seconds=600)
            print(name, out[f"region_{name}"], out[f"one_store_{name}"], flush=True)
    finally:
        stop(server)
        if admin_url is not None and not args.keep:
            await asyncio.to_thread(drop_database, url, admin_url)
    return out


def write(out: dict[str, Any], name: str = "regions") -> None:
    command = f"python -m bench.regions --statements {out['statements_target']} --stores {out['stores']}"
    if "database" in out:
        command += f" --embedded DIR  ({out['database']})"
    write_results(name, "Regions at size", command, out)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.regions", description=__doc__)
    parser.add_argument("--statements", type=int, default=1_000_000)
    parser.add_argument("--stores", type=int, default=50)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--database", help="a database an earlier --keep run filled")
    parser.add_argument("--keep", action="store_true", help="keep the filled database for --database")
    parser.add_argument(
        "--embedded", type=Path, default=None, metavar="DIR", help="run on an embedded PostgreSQL kept in DIR"
    )
    parser.add_argument("--name", default="regions", help="results file name under bench/results")
    args = parser.parse_args()
    write(asyncio.run(main_async(args)), args.name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
