"""Where a statement query's time goes: latency at one and at four requests in flight, and
the CPU each request costs the LRS workers, PostgreSQL and this load generator.

    python -m bench.queries [--statements 1000000] [NAME=SRC ...] [--rounds 2] [--filled URL]

Each source tree (a ``src/`` directory, e.g. of a ``git worktree`` at an older commit; the
current one by default) gets a fresh database, filled by its own ``lrs import`` (trees may
differ in schema) with the same ``--statements`` of ``bench.generate`` (the default seed, as
``bench.run`` sends them), without rollups, then ``VACUUM ANALYZE``d; ``--filled URL`` uses a
database filled so before instead (one tree) and keeps it. The trees are served in turn,
rounds alternating them, and each answers ``bench.run``'s
statement queries and one query (verb and since, as ``bench.run``'s) with pages of 1, 10
and 100 statements: those split a query's cost into a part per request and a part per
statement. On two cores, four in flight queue for the CPU: the CPU per request says what
one costs, the latency at c1 what a client waits when the machine is not saturated.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from tests.harness import create_database, drop_database, make_credential

from bench.generate import START, Generator, write_jsonl
from bench.loadgen import basic, request, run
from bench.profile import postgres_processes, processes_cpu_seconds, workers_cpu_seconds
from bench.run import HOST, q, start_lrs, statement_queries, stop, write_results

CONCURRENCY = (1, 4)
COMPLETED = "http://adlnet.gov/expapi/verbs/completed"


def fill(url: str, statements: int, src: str) -> None:
    """``statements`` into the default store by the ``lrs import`` of ``src``, then VACUUM
    ANALYZE."""
    env = {**os.environ, "PYTHONPATH": src, "LRS_DATABASE_URL": url, "LRS_ANALYTICS_ROLLUPS": "false"}
    lrs = str(Path(sys.executable).parent / "lrs")
    with tempfile.TemporaryDirectory() as work:
        source = Path(work) / "statements.jsonl"
        write_jsonl(source, Generator().statements(statements))
        subprocess.run([lrs, "migrate"], env=env, check=True, capture_output=True)
        subprocess.run([lrs, "import", str(source)], env=env, check=True, capture_output=True)
    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    subprocess.run(["psql", dsn, "-qc", "VACUUM ANALYZE"], check=True)


def kinds() -> dict[str, list[str]]:
    since = (START + timedelta(days=60)).isoformat()
    pages = {
        f"page_{n}": [q("/xapi/statements", verb=COMPLETED, since=since, limit=n)] * 100 for n in (1, 10, 100)
    }
    return {**statement_queries(100), **pages}


async def ask(
    port: int, auth: str, paths: list[str], concurrency: int, repeat: int, server: subprocess.Popen[bytes]
) -> dict[str, Any]:
    """``paths`` ``repeat`` times over; latency, and CPU milliseconds per request."""
    headers = {"Authorization": auth, "X-Experience-API-Version": "2.0.0"}
    built = [request("GET", p, f"{HOST}:{port}", headers=headers) for p in paths] * repeat
    pg = [p.pid for p in postgres_processes()]
    lrs, db, me = workers_cpu_seconds(server), processes_cpu_seconds(pg), time.process_time()
    result = await run(
        HOST, port, lambda i: built[i] if i < len(built) else None, concurrency, len(built), 300
    )
    n = result.count
    db_after = processes_cpu_seconds(pg)
    used = sum(db_after[p] - db[p] for p in db_after if p in db)
    return {
        **result.summary(),
        "lrs_cpu_ms": round((workers_cpu_seconds(server) - lrs) / n * 1000, 3),
        "postgresql_cpu_ms": round(used / n * 1000, 3),
        "load_generator_cpu_ms": round((time.process_time() - me) / n * 1000, 3),
    }


async def one_tree(src: str, url: str, auth: str, workers: int, repeat: int) -> dict[str, Any]:
    os.environ["PYTHONPATH"] = src
    server, port = start_lrs(url, workers, analytics_rollups="false", background_worker="false")
    try:
        asked = kinds()
        for paths in asked.values():  # warm: connections, prepared statements, caches
            await ask(port, auth, paths, 4, 1, server)
        out = {}
        for name, paths in asked.items():
            for c in CONCURRENCY:
                out[f"{name}_c{c}"] = await ask(port, auth, paths, c, repeat, server)
        return out
    finally:
        stop(server)


async def main_async(args: argparse.Namespace, trees: dict[str, str]) -> dict[str, Any]:
    os.environ.setdefault("LRS_TEST_DATABASE_URL", "postgresql://root@127.0.0.1:5432/root")
    out: dict[str, Any] = {"statements": args.statements, "workers": args.workers, "repeat": args.repeat}
    databases: dict[str, tuple[str, str]] = {}  # tree: (url, admin url to drop it with, or "")
    try:
        for name, src in trees.items():
            if args.filled:
                databases[name] = (args.filled, "")
                continue
            databases[name] = await asyncio.to_thread(create_database)
            started = time.perf_counter()
            await asyncio.to_thread(fill, databases[name][0], args.statements, os.path.abspath(src))
            out[f"{name}_fill_seconds"] = round(time.perf_counter() - started)
        auths = {}
        for name, (url, _) in databases.items():
            os.environ["PYTHONPATH"] = os.path.abspath(trees[name])  # the CLI of the tree's schema
            cred = await asyncio.to_thread(make_credential, url, "statements/read")
            auths[name] = basic(cred.key, cred.secret)
        for r in range(args.rounds):
            for name, src in trees.items():
                url = databases[name][0]
                found = await one_tree(os.path.abspath(src), url, auths[name], args.workers, args.repeat)
                for kind, figures in found.items():
                    out[f"{name}_round{r + 1}_{kind}"] = figures
                    print(name, r + 1, kind, figures, flush=True)
    finally:
        for url, admin in databases.values():
            if admin:
                await asyncio.to_thread(drop_database, url, admin)
    return out


_MEDIANS = ("p95_ms", "per_second", "lrs_cpu_ms", "postgresql_cpu_ms")


def summary(out: dict[str, Any], trees: list[str], rounds: int) -> str:
    """A table of the medians over the rounds: each kind of query per tree."""
    kinds = sorted({k.split("_", 2)[2] for k in out if k.startswith(f"{trees[0]}_round1_")}, key=_order)
    head = "| query | " + " | ".join(trees) + " |"
    rows = [head, "|" + " --- |" * (len(trees) + 1)]
    for kind in kinds:
        cells = []
        for tree in trees:
            found = [out[f"{tree}_round{r + 1}_{kind}"] for r in range(rounds)]
            m = {name: statistics.median(f[name] for f in found) for name in _MEDIANS}
            cells.append(
                f"p95 {m['p95_ms']:.1f} ms, {m['per_second']:.0f}/s,"
                f" CPU {m['lrs_cpu_ms']:.2f} + {m['postgresql_cpu_ms']:.2f} ms"
            )
        rows.append(f"| {kind} | " + " | ".join(cells) + " |")
    return (
        f"\nMedians over {rounds} rounds. CPU: milliseconds per request of the LRS workers +"
        " PostgreSQL.\n\n" + "\n".join(rows) + "\n"
    )


def _order(kind: str) -> tuple[int, str]:
    # bench.run's queries first, then the pages by size, each at c1 then c4
    name, _, c = kind.rpartition("_c")
    size = int(name.split("_")[1]) if name.startswith("page_") else 0
    return (size, name + c)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.queries", description=__doc__)
    parser.add_argument("trees", nargs="*", metavar="NAME=SRC", help="a name and a src/ directory")
    parser.add_argument("--statements", type=int, default=1_000_000)
    parser.add_argument("--filled", metavar="URL", help="a database filled as this bench fills one")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5, help="each kind's 100 requests this many times")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--name", default="queries", help="results file name under bench/results")
    args = parser.parse_args()
    trees = dict(t.split("=", 1) for t in args.trees) or {"current": "src"}
    if args.filled and len(trees) > 1:
        parser.error("--filled serves one tree")
    out = asyncio.run(main_async(args, trees))
    command = "python -m bench.queries " + " ".join(sys.argv[1:])
    after = summary(out, list(trees), args.rounds)
    title = "Statement queries: latency and CPU per request"
    write_results(args.name, title, command.strip(), out, after=after)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
