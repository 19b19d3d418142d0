"""`lrs analytics rebuild` at size: how long recounting one store's rollups takes, and whether
its pace holds as the rollups grow.

    python -m bench.rebuild [--statements 1000000] [--database URL --store NAME]
                            [--limit-seconds S] [--name rebuild]

Without ``--database``, generated statements are imported into a store of a fresh database
with ``lrs import`` (their rollups queued, not folded). The rebuild then runs in this
process as the command runs it (``ops.analytics.rebuild``: one transaction), and its count is
read after every batch, so the results give the rate over each tenth of the statements, and
for a rebuild that finished, the time spent appending its batches and adding them up at its
end. With ``--limit-seconds``, a rebuild still running then is cancelled (its transaction
rolls back) and the results say how far it came. Also: this process's CPU per statement
(reading, parsing and computing the rollups; the rest is PostgreSQL's), the database's
size, and the rollups' size when the rebuild finished. Results go to bench/results/NAME.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection
from tests.harness import create_database, drop_database

from bench import transfer as transfer_bench
from bench.generate import Generator, write_jsonl
from bench.run import write_results
from lrs.analytics.writes import ROLLUP_TABLES
from lrs.config import Settings
from lrs.ops import analytics as analytics_ops
from lrs.store.database import Database
from lrs.store.db import create_engine


def fill(url: str, store: str, count: int) -> float:
    """Import ``count`` generated statements into a new ``store``; the seconds it took."""
    env = {**os.environ, "LRS_DATABASE_URL": url}
    subprocess.run(
        [sys.executable, "-m", "lrs", "store", "create", store], env=env, check=True, capture_output=True
    )
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "statements.jsonl"
        write_jsonl(source, Generator(seed=count).statements(count))
        seconds, _, _ = transfer_bench.lrs(url, "import", str(source), "--store", store)
        return seconds


async def sizes(db: Database) -> dict[str, int]:
    """The database's size and the rollup tables' (with their indexes), in bytes."""

    async def work(conn: AsyncConnection) -> dict[str, int]:
        found = {"database": await conn.scalar(text("SELECT pg_database_size(current_database())"))}
        found["rollups"] = sum(
            [await conn.scalar(text(f"SELECT pg_total_relation_size('{t}')")) for t in ROLLUP_TABLES]
        )
        return found

    return await db.read(work)


async def rebuild(url: str, store: str, limit: float | None) -> dict[str, Any]:
    """Run the rebuild, noting (seconds, statements counted) after each batch."""
    db = Database(create_engine(url))
    marks: list[tuple[float, int]] = []
    started = time.perf_counter()
    cpu = time.process_time()
    try:
        before = await sizes(db)
        running = analytics_ops.rebuild(
            db, Settings(), "bench", store, lambda n: marks.append((time.perf_counter() - started, n))
        )
        try:
            counted = await asyncio.wait_for(running, limit)
            finished = True
        except TimeoutError:
            counted, finished = (marks[-1][1] if marks else 0), False
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu
        after = await sizes(db)
    finally:
        await db.engine.dispose()
    out: dict[str, Any] = {
        "finished": finished,
        "statements_counted": counted,
        "seconds": round(seconds, 1),
        "per_second": round(counted / seconds, 1),
        "python_cpu_us_per_statement": round(cpu / max(counted, 1) * 1e6),
        "database_gb_before": round(before["database"] / 1e9, 2),
        "database_gb_after": round(after["database"] / 1e9, 2),
    }
    if finished:
        out["rollups_gb"] = round(after["rollups"] / 1e9, 2)
        if marks:  # the last mark is taken when the last batch is appended
            out["appending_seconds"] = round(marks[-1][0], 1)
            out["adding_up_seconds"] = round(seconds - marks[-1][0], 1)
    out["per_second_by_tenth"] = _by_tenth(marks)
    # To compare runs stopped at different times: the count every ten minutes.
    out["counted_by_minute"] = {
        f"{minute}": max((n for t, n in marks if t <= minute * 60), default=0)
        for minute in range(10, int(seconds // 60) + 1, 10)
    }
    return out


def _by_tenth(marks: list[tuple[float, int]]) -> dict[str, float]:
    """The rate over each tenth of what was counted, from the marks taken after each batch."""
    if not marks:
        return {}
    last = marks[-1][1]
    rates: dict[str, float] = {}
    previous = (0.0, 0)
    for tenth in range(1, 11):
        upto = next(m for m in marks if m[1] >= last * tenth / 10)
        if upto[1] > previous[1]:
            rates[f"to_{upto[1]}"] = round((upto[1] - previous[1]) / (upto[0] - previous[0]), 1)
        previous = upto
    return rates


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rebuild", description=__doc__)
    parser.add_argument("--statements", type=int, default=1_000_000)
    parser.add_argument("--database", help="an existing database holding --store (not dropped)")
    parser.add_argument("--store", default="rebuild")
    parser.add_argument("--limit-seconds", type=float, help="stop a rebuild still running then")
    parser.add_argument("--name", default="rebuild", help="results file name under bench/results")
    args = parser.parse_args()
    # The code measured is the code at the start: a commit made meanwhile is not it.
    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    out: dict[str, Any] = {"commit": commit}
    admin = None
    if args.database:
        url = args.database
    else:
        os.environ.setdefault("LRS_TEST_DATABASE_URL", "postgresql://root@127.0.0.1:5432/root")
        url, admin = create_database()
    try:
        if admin is not None:
            out["import_seconds"] = round(fill(url, args.store, args.statements), 1)
            print("imported", out, flush=True)
        out.update(asyncio.run(rebuild(url, args.store, args.limit_seconds)))
    finally:
        if admin is not None:
            drop_database(url, admin)
    command = " ".join(
        ["python -m bench.rebuild", *("URL" if a.startswith("postgresql") else a for a in sys.argv[1:])]
    )
    write_results(args.name, "`lrs analytics rebuild` at size", command, out)
    print(out, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
