"""How fast the background worker folds stored statements into the analytics rollups.

    python -m bench.fold [--statements 30000] [--rounds 1] [--arriving] [--profile]

Queues statements through the real write path (no server, no worker running), then times
``ops.analytics.fold_pending`` until the queue is empty, and then a rebuild of the same
figures (``ops.analytics.rebuild``); then the same on a second database with the worker's
``ops.analytics.Folder`` (each batch computed while the last one's SQL runs), in this one
process, on a fresh database at LRS_BENCH_DATABASE_URL (else LRS_TEST_DATABASE_URL, else
127.0.0.1:5432). Each fold also reports its CPU per statement: this process's (Python), its
database's PostgreSQL processes' (which holds on a busy machine), the rest of the machine's
(PostgreSQL, on a quiet machine), and what the rollups then take on disk per statement. The
collector is tuned as the server tunes it (``lrs.gctuning``). ``--rounds R`` queues and folds
in R rounds, each on the rollups the rounds before it left, and reports each: how the fold
slows as the rollups grow. ``--arriving`` gives the statements timestamps in the order they
are made, as statements sent while learning happens have, instead of at random over 90 days
(bench.generate). ``--profile`` prints where the fold's Python time goes (cProfile, by own
time).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import time
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from tests.harness import create_database, drop_database, make_credential

from bench.generate import Generator
from bench.profile import machine_cpu_seconds, processes_cpu_seconds
from lrs.config import Settings
from lrs.gctuning import collect_less
from lrs.ops import analytics as analytics_ops
from lrs.ops import credentials as credential_ops
from lrs.ops import statements as statement_ops
from lrs.ops.caller import Caller
from lrs.store.database import Database
from lrs.xapi.statements import prepare
from lrs.xapi.versions import Version

# What the rollups take on disk as the fold left them (dead row versions included), with
# their indexes.
_ROLLUP_BYTES = (
    "SELECT sum(pg_total_relation_size(oid)) FROM pg_class WHERE relname LIKE 'analytics%' AND relkind = 'r'"
)


async def _backends(engine: AsyncEngine) -> list[int]:
    """The PostgreSQL processes working on the engine's database (its autovacuum too)."""
    async with engine.connect() as conn:
        found = await conn.execute(
            text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        )
        return [pid for (pid,) in found]


async def measure(
    statements: int, profile: bool, ahead: bool, rounds: int = 1, arriving: bool = False
) -> dict[str, Any]:
    url, admin = await asyncio.to_thread(create_database)
    engine = create_async_engine(url, pool_size=4)
    try:
        key = (await asyncio.to_thread(make_credential, url, "statements/write")).key
        db = Database(engine)
        settings = Settings(database_url=url)
        credential = await credential_ops.lookup(db, key)
        assert credential is not None
        who = Caller(credential)
        gen = Generator(seed=5, arriving=statements if arriving else None)
        per_round = statements // rounds
        queued = folded = python = other = postgres = 0.0
        each: list[dict[str, float]] = []
        profiler = cProfile.Profile() if profile else None
        for _ in range(rounds):
            started = time.perf_counter()
            for _ in range(per_round // 500):
                batch = [prepare(s, Version.V2, who.authority, "statement") for s in gen.statements(500)]
                await statement_ops.write(db, settings, who, batch)
            queued += time.perf_counter() - started
            backends = processes_cpu_seconds(await _backends(engine))
            machine, own = machine_cpu_seconds(), time.process_time()
            started = time.perf_counter()
            if profiler:
                profiler.enable()
            if ahead:  # as the worker folds: each batch computed while the last one's SQL runs
                folder = analytics_ops.Folder(db, settings)
                while await folder.fold():
                    pass
                await folder.close()
            else:
                while await analytics_ops.fold_pending(db, settings):
                    pass
            if profiler:
                profiler.disable()
            seconds = time.perf_counter() - started
            mine = time.process_time() - own  # this process, the fold's thread included
            rest = machine_cpu_seconds() - machine - mine
            ended = processes_cpu_seconds(await _backends(engine))
            database = sum(cpu - backends.get(pid, 0.0) for pid, cpu in ended.items())
            folded, python, other = folded + seconds, python + mine, other + rest
            postgres += database
            each.append(
                {
                    "fold_statements_per_second": round(per_round / seconds, 1),
                    "fold_cpu_us": round((mine + rest) / per_round * 1e6),
                    "fold_python_and_database_cpu_us": round((mine + database) / per_round * 1e6),
                }
            )
        if profiler:
            pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
        done = per_round * rounds
        out: dict[str, Any] = {
            "statements": done,
            "queue_statements_per_second": round(done / queued, 1),
            "fold_statements_per_second": round(done / folded, 1),
            # CPU per statement: this process's, and the rest of the machine's (PostgreSQL).
            "fold_python_cpu_us": round(python / done * 1e6),
            "fold_other_cpu_us": round(other / done * 1e6),
            # Its database's PostgreSQL processes alone: unlike the rest of the machine, this
            # holds on a busy machine.
            "fold_database_cpu_us": round(postgres / done * 1e6),
        }
        if rounds > 1:
            out["rounds"] = each
            out["last_vs_first_round"] = round(
                each[-1]["fold_statements_per_second"] / each[0]["fold_statements_per_second"], 3
            )
        async with engine.connect() as conn:
            size = await conn.scalar(text(_ROLLUP_BYTES))
        out["rollup_bytes_per_statement"] = round(size / done)
        if not ahead:
            # The same figures recounted at once, as `lrs analytics rebuild` does.
            started = time.perf_counter()
            await analytics_ops.rebuild(db, settings, "bench", "default")
            out["rebuild_statements_per_second"] = round(done / (time.perf_counter() - started), 1)
        return out
    finally:
        await engine.dispose()
        await asyncio.to_thread(drop_database, url, admin)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fold", description=__doc__)
    parser.add_argument("--statements", type=int, default=30_000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="queue and fold the statements in this many rounds, each on the rollups the rounds"
        " before it left, and report each round",
    )
    parser.add_argument(
        "--arriving",
        action="store_true",
        help="timestamps in the order the statements are made (bench.generate), not at random",
    )
    args = parser.parse_args()
    collect_less()  # the collector as the server (where the worker runs) tunes it
    if "LRS_BENCH_DATABASE_URL" in os.environ:
        os.environ["LRS_TEST_DATABASE_URL"] = os.environ["LRS_BENCH_DATABASE_URL"]
    os.environ.setdefault("LRS_TEST_DATABASE_URL", "postgresql://root@127.0.0.1:5432/root")
    inline = asyncio.run(measure(args.statements, args.profile, False, args.rounds, args.arriving))
    ahead = asyncio.run(measure(args.statements, args.profile, True, args.rounds, args.arriving))
    out = {
        "inline": inline,
        "computed_ahead": ahead,
        "ahead_vs_inline": round(
            ahead["fold_statements_per_second"] / inline["fold_statements_per_second"], 3
        ),
        "rebuild_vs_inline_fold": round(
            inline["rebuild_statements_per_second"] / inline["fold_statements_per_second"], 3
        ),
    }
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
