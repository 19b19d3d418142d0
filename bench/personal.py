"""Personal data at size: a person's copy and erasure in a store of many statements.

    python -m bench.personal [--statements 1000000] [--people 5] [--database URL] [--keep]

A store of ``--statements`` generated statements (20,000 learners, as bench.leaders fills
it) is filled through the LRS and folded by its worker. Then, for ``--people`` learners, the
admin API is timed on: the copy (`persons/export`), the dry run and the erasure itself, each
against the same run's `GET /statements?agent=` for that learner (one indexed page), so the
ratio says what the operation costs beyond finding the person. Results go to
bench/results/personal.{json,md}. ``--database`` reuses a database an earlier ``--keep`` run
filled (people erased there are gone: later runs take the next learners).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from tests.harness import create_database, drop_database, make_credential

from bench.generate import Generator
from bench.leaders import fill
from bench.loadgen import basic
from bench.run import HOST, start_lrs, stop, write_results

RESULTS = Path(__file__).resolve().parent / "results"


async def timed(call: Any) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    response = await call
    return time.perf_counter() - started, response


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    os.environ.setdefault("LRS_TEST_DATABASE_URL", "postgresql://root@127.0.0.1:5432/root")
    out: dict[str, Any] = {"statements_target": args.statements}
    if args.database:
        url, admin_url = args.database, None
        out["fill"] = "an earlier --keep run of this benchmark"
    else:
        url, admin_url = await asyncio.to_thread(create_database)
        print("database", url, flush=True)
    server, port = start_lrs(url, args.workers)
    try:
        if admin_url is not None:
            writer = make_credential(url, scopes="all")
            out["fill"] = await fill(port, basic(writer.key, writer.secret), args.statements)
            print("fill", out["fill"], flush=True)
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        out["statements_stored"] = await conn.fetchval("SELECT count(*) FROM statements")
        await conn.execute("VACUUM ANALYZE")
        await conn.close()
        admin = make_credential(url, scopes="admin").auth
        reader = make_credential(url, scopes="statements/read").auth
        gen = Generator()
        people: list[dict[str, Any]] = []
        base = f"http://{HOST}:{port}"
        async with (
            httpx.AsyncClient(base_url=base, auth=admin, timeout=120) as c,
            httpx.AsyncClient(
                base_url=base + "/xapi",
                auth=reader,
                timeout=60,
                headers={"X-Experience-API-Version": "2.0.0"},
            ) as x,
        ):
            n = 1
            while len(people) < args.people:
                learner = gen.learner(n)
                n += 7
                ifi = {k: v for k, v in learner.items() if k in ("mbox", "account")}
                body = {"agents": [ifi]}
                query_s, found = await timed(
                    x.get("/statements", params={"agent": json.dumps(ifi), "limit": 100})
                )
                if not found.json()["statements"]:
                    continue  # erased by an earlier run on this database
                export_s, copy = await timed(c.post("/admin/stores/default/persons/export", json=body))
                dry_s, dry = await timed(
                    c.post("/admin/stores/default/persons/erase", params={"dry_run": "true"}, json=body)
                )
                erase_s, done = await timed(c.post("/admin/stores/default/persons/erase", json=body))
                assert copy.status_code == dry.status_code == done.status_code == 200, done.text
                person = {
                    "statements": done.json()["statements"]["erased"],
                    "rollup_rows": done.json()["rollup_rows"],
                    "archive_kb": round(len(copy.content) / 1024, 1),
                    "query_ms": round(query_s * 1000, 1),
                    "export_ms": round(export_s * 1000, 1),
                    "dry_run_ms": round(dry_s * 1000, 1),
                    "erase_ms": round(erase_s * 1000, 1),
                }
                people.append(person)
                print("person", person, flush=True)
        out["people"] = people
        for measure in ("query_ms", "export_ms", "dry_run_ms", "erase_ms"):
            out[f"{measure}_median"] = round(statistics.median(p[measure] for p in people), 1)
            out[f"{measure}_max"] = max(p[measure] for p in people)
        query = out["query_ms_median"]
        out["erase_over_query"] = round(out["erase_ms_median"] / query, 1)
        out["export_over_query"] = round(out["export_ms_median"] / query, 1)
    finally:
        stop(server)
        if admin_url is not None and not args.keep:
            await asyncio.to_thread(drop_database, url, admin_url)
    return out


def write(out: dict[str, Any]) -> None:
    people = ["| statements | rollup rows | archive KB | query ms | export ms | dry run ms | erase ms |"]
    people.append("| --- | --- | --- | --- | --- | --- | --- |")
    for p in out["people"]:
        people.append(
            f"| {p['statements']} | {p['rollup_rows']} | {p['archive_kb']} | {p['query_ms']} |"
            f" {p['export_ms']} | {p['dry_run_ms']} | {p['erase_ms']} |"
        )
    after = "\nPer person (one learner's statements erased of the store's):\n\n" + "\n".join(people) + "\n"
    command = f"python -m bench.personal --statements {out['statements_target']}"
    write_results("personal", "Personal data at size", command, out, skip="people", after=after)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.personal", description=__doc__)
    parser.add_argument("--statements", type=int, default=1_000_000)
    parser.add_argument("--people", type=int, default=5)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--database", help="a database an earlier --keep run filled")
    parser.add_argument("--keep", action="store_true", help="keep the filled database for --database")
    args = parser.parse_args()
    write(asyncio.run(main_async(args)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
