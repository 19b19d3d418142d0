"""Ingest or read rates of two or more source trees, measured alternately in one run.

    python -m bench.ab base=/path/to/old/src new=src [--rounds 2] [--seconds 8] [--reads N]

Each tree (a `src/` directory, e.g. of a `git worktree` at an older commit) is served in
turn on a fresh database with the same load: single statements at c8 and c32, batches of
100 at c8. Each phase reports statements per second, and the CPU each statement cost from
the phase's start until the worker had folded it: the machine's (``_cpu_us``: the LRS,
PostgreSQL and this load generator) and the LRS workers' alone (``_lrs_cpu_us``). A busy
machine moves rates more than it moves CPU per statement. With ``--reads N``, one database
is filled with N statements first (by the first tree), and each tree in turn answers the
benchmark's statement queries (bench.run) on it, four at a time: requests per second and p95
per kind of query. Rounds alternate the trees,
so a busy machine slows them alike; compare the trees' figures within a round, and the
spread between rounds tells the noise. Results go to standard output as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from typing import Any

from tests.harness import create_database, drop_database, make_credential

from bench.generate import Generator
from bench.loadgen import basic
from bench.profile import machine_cpu_seconds, workers_cpu_seconds
from bench.run import caught_up, get_many, ingest, start_lrs, statement_queries, stop

PHASES = (("single_c8", 1, 8), ("single_c32", 1, 32), ("batch100_c8", 100, 8))


async def measure(src: str, seconds: float, workers: int) -> dict[str, float]:
    os.environ["PYTHONPATH"] = src  # the server and the CLI import lrs from this tree
    url, admin = await asyncio.to_thread(create_database)
    server, port = start_lrs(url, workers)
    try:
        cred = await asyncio.to_thread(make_credential, url)
        auth = basic(cred.key, cred.secret)
        out = {}
        for n, (name, batch, concurrency) in enumerate(PHASES):
            machine, lrs = machine_cpu_seconds(), workers_cpu_seconds(server)
            result = await ingest(port, auth, Generator(seed=n), batch, concurrency, seconds)
            await caught_up(port)
            stored = result["statements"]
            out[name] = result["statements_per_second"]
            out[f"{name}_cpu_us"] = round((machine_cpu_seconds() - machine) / stored * 1e6)
            out[f"{name}_lrs_cpu_us"] = round((workers_cpu_seconds(server) - lrs) / stored * 1e6)
        return out
    finally:
        stop(server)
        await asyncio.to_thread(drop_database, url, admin)


async def fill(url: str, src: str, statements: int, workers: int) -> str:
    """Fill the database with ``statements`` (and their rollups); the credential's auth."""
    os.environ["PYTHONPATH"] = src
    server, port = start_lrs(url, workers)
    try:
        cred = await asyncio.to_thread(make_credential, url)
        auth = basic(cred.key, cred.secret)
        await ingest(port, auth, Generator(), 500, 4, 3600, max_requests=-(-statements // 500))
        await caught_up(port, limit=3600)
        return auth
    finally:
        stop(server)


async def read(src: str, url: str, auth: str, workers: int) -> dict[str, list[float]]:
    os.environ["PYTHONPATH"] = src
    server, port = start_lrs(url, workers)
    try:
        out = {}
        for name, paths in statement_queries(200).items():
            found = await get_many(port, auth, paths, 4)
            out[name] = [found["per_second"], found["p95_ms"]]
        return out
    finally:
        stop(server)


async def main_async(
    trees: dict[str, str], rounds: int, seconds: float, workers: int, reads: int
) -> dict[str, Any]:
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    url, admin = await asyncio.to_thread(create_database) if reads else ("", "")
    try:
        auth = await fill(url, os.path.abspath(next(iter(trees.values()))), reads, workers) if reads else ""
        for _ in range(rounds):
            for name, src in trees.items():
                if reads:
                    results[name].append(await read(os.path.abspath(src), url, auth, workers))
                else:
                    results[name].append(await measure(os.path.abspath(src), seconds, workers))
                print(name, results[name][-1], flush=True)
    finally:
        if reads:
            await asyncio.to_thread(drop_database, url, admin)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__)
    parser.add_argument("trees", nargs="+", metavar="NAME=SRC", help="a name and a src/ directory")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--reads", type=int, default=0, metavar="N", help="compare reads on N statements")
    args = parser.parse_args()
    trees = dict(tree.split("=", 1) for tree in args.trees)
    os.environ.setdefault("LRS_TEST_DATABASE_URL", "postgresql://root@127.0.0.1:5432/root")
    results = asyncio.run(main_async(trees, args.rounds, args.seconds, args.workers, args.reads))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
