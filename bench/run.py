"""The benchmark: ingest, queries, analytics and memory, with their ceilings, in one run.

    python -m bench.run [--statements 1000000] [--workers N] [--profile-seconds S] [--skip-rebuild]
                        [--arriving] [--name NAME]

Uses the PostgreSQL at LRS_BENCH_DATABASE_URL (else LRS_TEST_DATABASE_URL, else
127.0.0.1:5432) and creates fresh databases there; everything runs on loopback, and every
phase is bounded in requests and seconds. Results go to bench/results/NAME.{json,md}
(default: latest). With --profile-seconds, the fill is profiled for that long (bench.profile:
CPU seconds by process group, and the LRS workers' hottest functions by py-spy). With
--arriving, the statements' timestamps follow the order they are sent instead of falling at
random over 90 days (bench.generate).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
import urllib.parse
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import psutil
from tests.harness import ROOT, create_database, drop_database, free_port, make_credential, metric

from bench.generate import START, Generator
from bench.loadgen import basic, request, run
from bench.profile import DatabaseSampler, Sampler, profile
from lrs.embedded import EMBEDDED_SERVER_SETTINGS, start_embedded

RESULTS = Path(__file__).resolve().parent / "results"
HOST = "127.0.0.1"


def _serve(args: list[str], env: dict[str, str], port: int, probe: str) -> subprocess.Popen[bytes]:
    """Start a server and wait until ``probe`` answers."""
    import httpx

    log = open(Path("/tmp") / f"bench-server-{port}.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited; see {log.name}")
        try:
            httpx.get(f"http://{HOST}:{port}{probe}", timeout=1)
            return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("server did not start")


def start_lrs(database_url: str, workers: int, **settings: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {
        **os.environ,
        "LRS_DATABASE_URL": database_url,
        "LRS_LOG_LEVEL": "warning",
        **{f"LRS_{k.upper()}": v for k, v in settings.items()},
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    lrs = str(Path(sys.executable).parent / "lrs")
    return _serve(
        [lrs, "serve", "--host", HOST, "--port", str(port), "--workers", str(workers)],
        env,
        port,
        "/health/live",
    ), port


def start_trivial(workers: int) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    return _serve(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bench.trivial:app",
            "--host",
            HOST,
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        {**os.environ, "PYTHONPATH": str(ROOT)},
        port,
        "/docs",
    ), port


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()


def peak_rss_mb(process: subprocess.Popen[bytes]) -> dict[str, float]:
    """Peak resident memory (VmHWM) of each worker process of a server."""
    out = {}
    workers = [
        c
        for c in psutil.Process(process.pid).children(recursive=True)
        if "spawn_main" in " ".join(c.cmdline())
    ]
    for child in workers:
        try:
            with open(f"/proc/{child.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        out[str(child.pid)] = round(int(line.split()[1]) / 1024, 1)
        except OSError:
            continue
    return out


async def copy_ceiling(admin_url: str, docs: list[str]) -> float:
    """Statements/s for COPY into a bare table of the same shape, on one connection (the
    statement as json since migration 0024; jsonb before, which made COPY about half as fast)."""
    dsn = admin_url.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DROP TABLE IF EXISTS bench_copy")
        await conn.execute(
            "CREATE TABLE bench_copy (store_id bigint, seq bigserial, id uuid,"
            " stored timestamptz, verb_id text, statement json,"
            " PRIMARY KEY (store_id, seq), UNIQUE (store_id, id))"
        )
        now = datetime.now(UTC)
        records = [(1, uuid.UUID(orjson.loads(d)["id"]), now, "v", d) for d in docs]
        started = time.perf_counter()
        await conn.copy_records_to_table(
            "bench_copy", records=records, columns=["store_id", "id", "stored", "verb_id", "statement"]
        )
        seconds = time.perf_counter() - started
        await conn.execute("DROP TABLE bench_copy")
        return len(docs) / seconds
    finally:
        await conn.close()


def statement_batches(gen: Generator, size: int):  # type: ignore[no-untyped-def]
    while True:
        yield orjson.dumps(list(gen.statements(size)))


async def ingest(
    port: int,
    auth: str,
    gen: Generator,
    batch: int,
    concurrency: int,
    seconds: float,
    max_requests: int = 10**7,
) -> dict[str, Any]:
    bodies = statement_batches(gen, batch)
    headers = {"Authorization": auth, "X-Experience-API-Version": "2.0.0", "Content-Type": "application/json"}
    host = f"{HOST}:{port}"

    def next_request(_: int) -> bytes:
        body = next(bodies)
        if batch == 1:
            body = body[1:-1]
        return request("POST", "/xapi/statements", host, body, headers)

    result = await run(HOST, port, next_request, concurrency, max_requests, seconds)
    summary = result.summary()
    summary["statements_per_second"] = round(result.count * batch / result.seconds, 1)
    summary["statements"] = result.count * batch
    return summary


class LagSampler(Sampler):
    """Samples the rollup lag from /metrics while a phase runs (four times a second)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.samples: list[float] = []

    async def _sample(self) -> None:
        import httpx

        async with httpx.AsyncClient(base_url=f"http://{HOST}:{self.port}", timeout=10) as c:
            while True:
                lag = metric((await c.get("/metrics")).text, "lrs_rollup_lag_seconds")
                if lag is not None:
                    self.samples.append(lag)
                await asyncio.sleep(0.25)

    def summary(self) -> dict[str, float]:
        ordered = sorted(self.samples) or [float("nan")]
        return {
            "samples": len(self.samples),
            "p50_s": round(ordered[len(ordered) // 2], 2),
            "p99_s": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 2),
            "max_s": round(ordered[-1], 2),
        }


async def caught_up(port: int, limit: float = 600) -> float:
    """Seconds until the worker has folded everything stored (after a phase)."""
    import httpx

    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=f"http://{HOST}:{port}", timeout=10) as c:
        while time.perf_counter() - started < limit:
            if metric((await c.get("/metrics")).text, "lrs_rollup_pending_statements") in (0, None):
                break
            await asyncio.sleep(0.1)
    return round(time.perf_counter() - started, 2)


async def get_many(
    port: int, auth: str, paths: list[str], concurrency: int, max_seconds: float = 60
) -> dict[str, Any]:
    headers = {"Authorization": auth, "X-Experience-API-Version": "2.0.0"}
    host = f"{HOST}:{port}"
    built = [request("GET", p, host, headers=headers) for p in paths]
    result = await run(
        HOST, port, lambda i: built[i] if i < len(built) else None, concurrency, len(built), max_seconds
    )
    return result.summary()


async def walk(port: int, auth: str, first: str, statements: int) -> dict[str, Any]:
    """Follow `more` links for a number of statements; first page vs the others."""
    import httpx

    headers = {"Authorization": auth, "X-Experience-API-Version": "2.0.0"}
    times: list[float] = []
    seen = 0
    async with httpx.AsyncClient(base_url=f"http://{HOST}:{port}", headers=headers, timeout=60) as c:
        url = first
        while url and seen < statements:
            started = time.perf_counter()
            body = (await c.get(url)).json()
            times.append(time.perf_counter() - started)
            seen += len(body["statements"])
            url = body["more"]
    rest = sorted(times[1:]) or [float("nan")]
    return {
        "statements": seen,
        "pages": len(times),
        "first_page_ms": round(times[0] * 1000, 2),
        "later_pages_p50_ms": round(rest[len(rest) // 2] * 1000, 2),
        "later_pages_p95_ms": round(rest[int(len(rest) * 0.95)] * 1000, 2),
    }


# How results name the embedded server they ran on (--embedded DIR).
EMBEDDED = "embedded PostgreSQL, " + ", ".join(f"{k}={v}" for k, v in EMBEDDED_SERVER_SETTINGS.items())


def statement_queries(count: int = 100) -> dict[str, list[str]]:
    """The statement queries the benchmark asks of a filled store, ``count`` of each kind."""
    probe = Generator()
    learners = [json.dumps(probe.learner(n)) for n in range(0, 20_000, 97)][:count]
    verbs = ["http://adlnet.gov/expapi/verbs/completed", "http://adlnet.gov/expapi/verbs/passed"]
    since = (START + timedelta(days=60)).isoformat()
    courses = [probe.course(c) for c in range(count)]
    regs = [probe.statement()["context"]["registration"] for _ in range(count)]
    return {
        "query_agent": [q("/xapi/statements", agent=a) for a in learners],
        "query_verb_since": [q("/xapi/statements", verb=verbs[i % 2], since=since) for i in range(count)],
        "query_activity_related": [
            q("/xapi/statements", activity=c, related_activities="true") for c in courses
        ],
        "query_registration": [q("/xapi/statements", registration=r) for r in regs],
    }


def q(path: str, **params: Any) -> str:
    return path + "?" + urllib.parse.urlencode(params)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    if args.embedded is not None:
        # The product's default server, with its settings (lrs.embedded); it stops when
        # this process exits.
        os.environ["LRS_BENCH_DATABASE_URL"] = start_embedded(args.embedded)
    if "LRS_BENCH_DATABASE_URL" in os.environ:
        os.environ["LRS_TEST_DATABASE_URL"] = os.environ["LRS_BENCH_DATABASE_URL"]
    os.environ.setdefault("LRS_TEST_DATABASE_URL", "postgresql://root@127.0.0.1:5432/root")
    workers = args.workers
    out: dict[str, Any] = {"statements_target": args.statements, "workers": workers}
    if args.without_rollups:
        out["without_rollups"] = True  # every phase after the ceilings: storage alone
    if args.embedded is not None:
        out["database"] = EMBEDDED
    gen = Generator(arriving=args.statements if args.arriving else None)
    if args.arriving:
        out["timestamps"] = "arriving"  # in the order the statements are made (bench.generate)
    sample = [orjson.dumps(s).decode() for s in Generator(seed=1).statements(2000)]
    out["statement_bytes_mean"] = round(sum(map(len, sample)) / len(sample))

    # Ceilings.
    url, admin = await asyncio.to_thread(create_database)
    try:
        docs = [orjson.dumps(s).decode() for s in Generator(seed=2).statements(args.copy_rows)]
        out["ceiling_copy_statements_per_second"] = round(await copy_ceiling(url, docs), 1)
    finally:
        await asyncio.to_thread(drop_database, url, admin)
    trivial, port = start_trivial(workers)
    try:
        one = orjson.dumps(sample[0])
        headers = {"Content-Type": "application/json", "X-Experience-API-Version": "2.0.0"}
        built = request("POST", "/xapi/statements", f"{HOST}:{port}", one, headers)
        r = await run(HOST, port, lambda _: built, 32, 10**7, args.phase_seconds)
        out["ceiling_trivial_requests_per_second"] = round(r.rate(), 1)
    finally:
        stop(trivial)

    # Rollup cost: the same batched ingest on a server with rollups off.
    url, admin = await asyncio.to_thread(create_database)
    server, port = start_lrs(url, workers, analytics_rollups="false")
    try:
        cred = make_credential(url)
        out["ingest_batch100_c8_without_rollups"] = await ingest(
            port, basic(cred.key, cred.secret), Generator(seed=3), 100, 8, args.phase_seconds
        )
        out["ingest_single_c32_without_rollups"] = await ingest(
            port, basic(cred.key, cred.secret), Generator(seed=4), 1, 32, args.phase_seconds
        )
    finally:
        stop(server)
        await asyncio.to_thread(drop_database, url, admin)

    # The LRS as configured for production (or, --without-rollups, storage alone).
    url, admin = await asyncio.to_thread(create_database)
    server, port = start_lrs(url, workers, analytics_rollups=str(not args.without_rollups).lower())
    try:
        cred = make_credential(url, scopes="all")
        auth = basic(cred.key, cred.secret)
        for name, batch, conc in (
            ("ingest_batch100_c8", 100, 8),
            ("ingest_batch100_c32", 100, 32),
            ("ingest_single_c8", 1, 8),
            ("ingest_single_c32", 1, 32),
        ):
            async with LagSampler(port) as lag:
                out[name] = await ingest(port, auth, gen, batch, conc, args.phase_seconds)
            out[name]["rollup_lag"] = {**lag.summary(), "catch_up_s": await caught_up(port)}
            print(name, out[name], flush=True)
        out["peak_rss_mb_after_ingest"] = peak_rss_mb(server)

        # Fill to the target size, then measure reads there.
        stored = sum(out[k]["statements"] for k in out if k.startswith("ingest_") and "without" not in k)
        fill_started = time.perf_counter()
        remaining = max(args.statements - stored, 0)
        if remaining:
            async with LagSampler(port) as lag:
                filling = asyncio.create_task(
                    ingest(port, auth, gen, 500, 4, 4 * 3600, max_requests=remaining // 500 + 1)
                )
                if args.profile_seconds:
                    await asyncio.sleep(min(30.0, args.profile_seconds))  # past the start
                    out["profile_fill"] = await profile(server, args.profile_seconds)
                    print("profile_fill", out["profile_fill"], flush=True)
                fill = await filling
            fill["rollup_lag"] = {**lag.summary(), "catch_up_s": await caught_up(port, args.catch_up_seconds)}
            out["fill"] = {**fill, "total_seconds": round(time.perf_counter() - fill_started, 1)}
            print("fill", out["fill"], flush=True)
        dsn = url.replace("postgresql+asyncpg://", "postgresql://")
        conn = await asyncpg.connect(dsn)
        out["statements_stored"] = await conn.fetchval("SELECT count(*) FROM statements")
        await conn.execute("VACUUM ANALYZE")
        size = await conn.fetchval("SELECT pg_database_size(current_database())")
        out["database_mb_per_million_statements"] = round(size / 2**20 / out["statements_stored"] * 1e6, 1)
        await conn.close()

        # Ingest at this size, against the same phase on the (nearly) empty store above; then
        # the same phase again, sampled by py-spy with --profile-seconds (not the first, which
        # is the figure, so that the profiler's own cost stays out of it). What the database
        # waits on is sampled in both.
        for name, profiled in (
            ("ingest_batch100_c8_at_size", False),
            ("ingest_batch100_c8_at_size_again", True),
        ):
            async with LagSampler(port) as lag, DatabaseSampler(dsn) as db:
                phase = asyncio.create_task(ingest(port, auth, gen, 100, 8, args.phase_seconds))
                if profiled and args.profile_seconds:
                    out[f"profile_{name}"] = await profile(
                        server, min(args.profile_seconds, args.phase_seconds)
                    )
                out[name] = await phase
            out[name]["rollup_lag"] = {**lag.summary(), "catch_up_s": await caught_up(port)}
            out[name]["database"] = db.summary()
            print(name, out[name], out.get(f"profile_{name}", ""), flush=True)

        for name, paths in statement_queries().items():
            out[name] = await get_many(port, auth, paths, 4)
            print(name, out[name], flush=True)
        first = q("/xapi/statements", verb="http://adlnet.gov/expapi/verbs/completed", limit=100)
        out["more_walk"] = await walk(port, auth, first, args.walk)
        out["peak_rss_mb_after_walk"] = peak_rss_mb(server)

        courses = [Generator().course(c) for c in range(100)]

        unit = "https://kommune.example.no/xapi/unit"
        month = ((START + timedelta(days=30)).isoformat(), (START + timedelta(days=60)).isoformat())
        analytics = {
            "analytics_completion": [q("/analytics/completion", activity=c) for c in courses],
            "analytics_completion_by_unit": [
                q("/analytics/completion", activity=c, group_by=f"extension:{unit}") for c in courses
            ],
            "analytics_engagement_week": [q("/analytics/engagement", interval="week")] * 100,
            "analytics_engagement_day_course": [
                q("/analytics/engagement", interval="day", activity=c) for c in courses
            ],
            "analytics_hours": [q("/analytics/engagement/hours")] * 100,
            "analytics_dropoff": [q("/analytics/dropoff", activity=c) for c in courses],
            "analytics_activities": [q("/analytics/activities", limit=50)] * 100,
            # With a window, the same questions add up the hourly rollup instead.
            "analytics_completion_30_days": [
                q("/analytics/completion", activity=c, since=month[0], until=month[1]) for c in courses
            ],
            "analytics_engagement_week_30_days": [
                q("/analytics/engagement", interval="week", since=month[0], until=month[1])
            ]
            * 20,
            "analytics_activities_30_days": [
                q("/analytics/activities", limit=50, since=month[0], until=month[1])
            ]
            * 20,
        }
        for name, paths in analytics.items() if not args.without_rollups else ():
            out[name] = await get_many(port, auth, paths, 2, max_seconds=120)
            print(name, out[name], flush=True)
        out["peak_rss_mb_end"] = peak_rss_mb(server)
    finally:
        stop(server)
    try:
        if args.without_rollups or args.skip_rebuild:
            return out
        # Recounting every figure of the store from its statements, by the CLI.
        started = time.perf_counter()
        await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "lrs", "analytics", "rebuild", "--store", "default"],
            env={**os.environ, "LRS_DATABASE_URL": url},
            check=True,
            capture_output=True,
            timeout=4 * 3600,
        )
        out["analytics_rebuild_seconds"] = round(time.perf_counter() - started, 1)
        print("analytics_rebuild_seconds", out["analytics_rebuild_seconds"], flush=True)
    finally:
        await asyncio.to_thread(drop_database, url, admin)
    return out


def ratios(out: dict[str, Any]) -> dict[str, float]:
    copy = out["ceiling_copy_statements_per_second"]
    trivial = out["ceiling_trivial_requests_per_second"]
    with_rollups = out["ingest_batch100_c8"]["statements_per_second"]
    without = out["ingest_batch100_c8_without_rollups"]["statements_per_second"]
    if out.get("without_rollups"):
        return {
            "batch100_c8_vs_copy": round(with_rollups / copy, 3),
            "single_c32_vs_trivial": round(out["ingest_single_c32"]["per_second"] / trivial, 3),
            "batch100_c8_at_size_vs_empty": round(
                out["ingest_batch100_c8_at_size"]["statements_per_second"] / with_rollups, 3
            ),
        }
    return {
        "batch100_c8_vs_copy": round(with_rollups / copy, 3),
        "single_c32_vs_trivial": round(out["ingest_single_c32"]["per_second"] / trivial, 3),
        "rollups_cost_batch100_c8": round(1 - with_rollups / without, 3),
        "rollups_cost_single_c32": round(
            1
            - out["ingest_single_c32"]["per_second"] / out["ingest_single_c32_without_rollups"]["per_second"],
            3,
        ),
        "rollup_lag_p99_s_batch100_c8": out["ingest_batch100_c8"]
        .get("rollup_lag", {})
        .get("p99_s", float("nan")),
        **(
            {"batch100_c8_at_size_vs_empty": round(at_size["statements_per_second"] / with_rollups, 3)}
            if (at_size := out.get("ingest_batch100_c8_at_size"))
            else {}
        ),
        **(
            {"batch100_c8_at_size_again_vs_empty": round(again["statements_per_second"] / with_rollups, 3)}
            if (again := out.get("ingest_batch100_c8_at_size_again"))
            else {}
        ),
        "more_later_vs_first_page": round(
            out["more_walk"]["later_pages_p50_ms"] / out["more_walk"]["first_page_ms"], 3
        ),
    }


def write(out: dict[str, Any], name: str = "latest") -> None:
    RESULTS.mkdir(exist_ok=True)
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=ROOT
    ).stdout.strip()
    out["commit"] = commit
    out["machine"] = (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, "
        f"{round(psutil.virtual_memory().total / 2**30)} GiB, "
        f"Python {platform.python_version()}"
    )
    out["measured"] = datetime.now(UTC).isoformat(timespec="seconds")
    out["ratios"] = ratios(out)
    # As it was given, but for the embedded server's directory (a path on this machine).
    given = sys.argv[1:]
    shown = ["DIR" if n and given[n - 1] == "--embedded" else a for n, a in enumerate(given)]
    command = " ".join(["python -m bench.run", *shown])
    if out.get("database"):
        command += f"  ({out['database']})"
    write_results(name, "Benchmark results", command, out)


def write_results(
    name: str, title: str, command: str, out: dict[str, Any], skip: str = "", after: str = ""
) -> None:
    """``out`` as results/<name>.json, and as a table of measures in results/<name>.md under
    ``title`` and the command that measured it (without the key ``skip``; ``after`` follows
    the table)."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(out, indent=2) + "\n")
    rows = ["| measure | figure |", "| --- | --- |"]
    for key, value in out.items():
        if key == skip:
            continue
        shown = ", ".join(f"{k} {v}" for k, v in value.items()) if isinstance(value, dict) else str(value)
        rows.append(f"| {key} | {shown} |")
    table = "\n".join(rows) + "\n"
    (RESULTS / f"{name}.md").write_text(f"# {title}\n\nCommand: `{command}`\n\n{table}{after}")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--statements", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--phase-seconds", type=float, default=15)
    parser.add_argument("--copy-rows", type=int, default=100_000)
    parser.add_argument("--walk", type=int, default=10_000)
    parser.add_argument("--profile-seconds", type=float, default=0)
    parser.add_argument(
        "--without-rollups",
        action="store_true",
        help="serve with LRS_ANALYTICS_ROLLUPS=false throughout: storage and queries alone, no analytics",
    )
    parser.add_argument(
        "--embedded", type=Path, default=None, metavar="DIR", help="run on an embedded PostgreSQL kept in DIR"
    )
    parser.add_argument(
        "--catch-up-seconds",
        type=float,
        default=600,
        help="the longest wait for the worker to fold the fill, before what follows is measured",
    )
    parser.add_argument(
        "--skip-rebuild",
        action="store_true",
        help="leave out timing `lrs analytics rebuild` (here about 18 minutes a million statements)",
    )
    parser.add_argument(
        "--arriving",
        action="store_true",
        help="the ingested statements' timestamps in the order they are sent, as statements sent"
        " while learning happens have, instead of at random over 90 days (bench.generate)",
    )
    parser.add_argument("--name", default="latest", help="results file name under bench/results")
    args = parser.parse_args()
    out = asyncio.run(main_async(args))
    write(out, args.name)
    print(json.dumps(out["ratios"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
