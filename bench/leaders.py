"""Analytics for leaders at size: cohorts, assignments, elements, feedback, grouping.

    python -m bench.leaders [--statements 1000000] [--cohorts 200] [--database URL] [--keep]
                            [--dashboard-only]

A store of ``--statements`` generated statements (20,000 learners, 100 courses of 9
modules; every 40th statement is a participant's rating of the course, and learners use an
app or the web) is filled through the LRS, folded by its worker, and given a municipality
of ``--cohorts`` cohorts (1 municipality, 19 sectors, the rest units) holding every
learner, with every course assigned to a few sectors. Then each new analytics question is
asked for every course, and a nightly membership sync is timed. Results go to
bench/results/leaders.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
from tests.harness import create_database, drop_database, make_credential

from bench.generate import Generator
from bench.loadgen import basic, request, run
from bench.run import HOST, caught_up, get_many, q, start_lrs, stop, write_results

RESULTS = Path(__file__).resolve().parent / "results"
RATED = "http://id.tincanapi.com/verb/rated"
SECTORS = 19


def leader_statements(gen: Generator) -> Iterator[dict[str, Any]]:
    """The generator's statements, with a platform per learner and a rating now and then."""
    for count, s in enumerate(gen.statements(10**12), start=1):
        s["context"]["platform"] = "app" if int(s["actor"]["name"].split()[-1]) % 2 else "web"
        if count % 40 == 0:
            course = s["context"]["contextActivities"]["parent"][0]["id"]
            s["verb"] = {"id": RATED, "display": {"nb": "vurderte"}}
            s["object"] = {"objectType": "Activity", "id": course}
            s["result"] = {"score": {"raw": gen.rng.randint(1, 5), "min": 1, "max": 5}}
            del s["context"]["contextActivities"]["parent"]
        yield s


async def fill(port: int, auth: str, statements: int) -> dict[str, Any]:
    gen = Generator()
    source = leader_statements(gen)
    headers = {"Authorization": auth, "X-Experience-API-Version": "2.0.0", "Content-Type": "application/json"}
    host = f"{HOST}:{port}"

    def next_request(_: int) -> bytes:
        body = orjson.dumps([next(source) for _ in range(500)])
        return request("POST", "/xapi/statements", host, body, headers)

    started = time.perf_counter()
    result = await run(HOST, port, next_request, 4, statements // 500, 7200)
    stored = time.perf_counter() - started
    folded = await caught_up(port, limit=7200)
    return {"statements": result.count * 500, "store_s": round(stored, 1), "fold_after_s": folded}


def cohort_plan(cohorts: int, learners: int) -> tuple[dict[str, str | None], dict[str, list[int]]]:
    """(cohort -> parent, unit -> learners): one municipality, its sectors, their units."""
    tree: dict[str, str | None] = {"Kommune": None}
    for s in range(SECTORS):
        tree[f"Sektor {s}"] = "Kommune"
    units = [f"Enhet {u}" for u in range(cohorts - 1 - SECTORS)]
    for u, unit in enumerate(units):
        tree[unit] = f"Sektor {u % SECTORS}"
    members: dict[str, list[int]] = {unit: [] for unit in units}
    for n in range(learners):
        members[units[n % len(units)]].append(n)
    return tree, members


async def set_up_cohorts(base: str, auth: tuple[str, str], cohorts: int, learners: int) -> dict[str, Any]:
    gen = Generator()
    tree, members = cohort_plan(cohorts, learners)
    async with httpx.AsyncClient(base_url=base, auth=auth, timeout=120) as c:
        for name, parent in tree.items():
            (await c.put(f"/analytics/cohorts/{name}", json={"parent": parent})).raise_for_status()
        started = time.perf_counter()
        for unit, ns in members.items():
            r = await c.put(f"/analytics/cohorts/{unit}/members", json=[gen.learner(n) for n in ns])
            r.raise_for_status()
        first_sync = time.perf_counter() - started
        rng = random.Random(7)
        for course in range(100):
            for sector in rng.sample(range(SECTORS), 3):
                r = await c.put(
                    f"/analytics/cohorts/Sektor {sector}/assignments",
                    json={"activity": gen.course(course), "due": "2026-08-01T00:00:00Z"},
                )
                r.raise_for_status()
        # A nightly sync: every unit sent again, five learners of one unit replaced.
        unit = next(iter(members))
        changed = members[unit][5:] + list(range(learners, learners + 5))
        timings = []
        for name, ns in members.items():
            body = [gen.learner(n) for n in (changed if name == unit else ns)]
            started = time.perf_counter()
            r = await c.put(f"/analytics/cohorts/{name}/members", json=body)
            timings.append(time.perf_counter() - started)
            r.raise_for_status()
        unchanged = sorted(timings)
    return {
        "cohorts": len(tree),
        "units": len(members),
        "first_sync_s": round(first_sync, 2),
        "resync_unit_p50_ms": round(unchanged[len(unchanged) // 2] * 1000, 2),
        "resync_unit_p95_ms": round(unchanged[int(len(unchanged) * 0.95)] * 1000, 2),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    os.environ.setdefault("LRS_TEST_DATABASE_URL", "postgresql://root@127.0.0.1:5432/root")
    out: dict[str, Any] = {"statements_target": args.statements, "cohorts_target": args.cohorts}
    if args.database:
        url, admin = args.database, None  # filled by an earlier run: questions only, kept
    else:
        url, admin = await asyncio.to_thread(create_database)
        print("database", url, flush=True)
    server, port = start_lrs(url, args.workers)
    try:
        if admin is not None:
            writer = make_credential(url, scopes="all")
            out["fill"] = await fill(port, basic(writer.key, writer.secret), args.statements)
            print("fill", out["fill"], flush=True)
            hr = make_credential(url, scopes="cohorts")
            out["cohorts"] = await set_up_cohorts(f"http://{HOST}:{port}", hr.auth, args.cohorts, 20_000)
            print("cohorts", out["cohorts"], flush=True)
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        out["statements_stored"] = await conn.fetchval("SELECT count(*) FROM statements")
        out["cohort_members"] = await conn.fetchval(
            "SELECT count(*) FROM cohort_members WHERE valid_to IS NULL"
        )
        await conn.execute("VACUUM ANALYZE")
        await conn.close()
        analyst = basic(*make_credential(url, scopes="analytics/read").auth)
        leader = basic(*make_credential(url, scopes="analytics/learners").auth)
        courses = [Generator().course(c) for c in range(100)]
        questions = {
            "assignments": [q("/analytics/assignments", activity=c) for c in courses],
            "assignments_by_cohort": [
                q("/analytics/assignments", activity=c, group_by="cohort") for c in courses
            ],
            "assignments_one_sector": [
                q("/analytics/assignments", activity=c, cohort="Sektor 3") for c in courses
            ],
            "elements": [q("/analytics/elements", activity=c) for c in courses],
            "feedback": [q("/analytics/feedback", activity=c) for c in courses],
            "feedback_by_platform": [
                q("/analytics/feedback", activity=c, group_by="platform") for c in courses
            ],
            "completion": [q("/analytics/completion", activity=c) for c in courses],
            "completion_by_cohort": [
                q("/analytics/completion", activity=c, group_by="cohort") for c in courses
            ],
            "completion_by_platform": [
                q("/analytics/completion", activity=c, group_by="platform") for c in courses
            ],
            "completion_one_unit": [
                q("/analytics/completion", activity=c, cohort="Enhet 7") for c in courses
            ],
            "engagement_week_course_by_platform": [
                q("/analytics/engagement", activity=c, interval="week", group_by="platform") for c in courses
            ],
            "hours_by_cohort_store_wide": [q("/analytics/engagement/hours", group_by="cohort")] * 10,
        }
        if not args.dashboard_only:
            for name, paths in questions.items():
                out[name] = await get_many(port, analyst, paths, 2, max_seconds=300)
                print(name, out[name], flush=True)
            out["assignments_learners"] = await get_many(
                port,
                leader,
                [q("/analytics/assignments/learners", activity=c) for c in courses],
                2,
                max_seconds=300,
            )
            print("assignments_learners", out["assignments_learners"], flush=True)
        await dashboard_pages(
            port, make_credential(url, scopes="analytics/read,analytics/learners").auth, courses, out
        )
    finally:
        stop(server)
        if admin is not None and not args.keep:
            await asyncio.to_thread(drop_database, url, admin)
    return out


JULY = {"period": "custom", "start": "2026-07-01", "end": "2026-07-31"}
# From July on: two thirds of the statements, the widest window that is not all of them.
FROM_JULY = {"period": "custom", "start": "2026-07-01", "end": "2026-12-31"}


async def dashboard_pages(port: int, auth: tuple[str, str], courses: list[str], out: dict[str, Any]) -> None:
    """Each dashboard page for every course, signed in as a leader (the session cookie), one
    page at a time: the time of a page is then the server's time to render it (plus loopback)."""
    async with httpx.AsyncClient(base_url=f"http://{HOST}:{port}") as c:
        form = await c.get("/dashboard/signin")
        signed = await c.post(
            "/dashboard/signin",
            data={"key": auth[0], "secret": auth[1], "csrf": form.cookies["lrs_signin"]},
        )
        assert signed.status_code == 303 and signed.headers["location"] == "/dashboard", signed.text
        cookie = f"lrs_session={c.cookies['lrs_session']}"
    pages = {
        "dashboard_overview": [q("/dashboard")] * 20,
        "dashboard_overview_30d": [q("/dashboard", period="30d")] * 20,
        # The statements are of summer 2026 (bench.generate): this year, every one is in the window.
        "dashboard_overview_year": [q("/dashboard", period="year")] * 10,
        # A past month in the middle of the data: a window bounded at both ends.
        "dashboard_overview_july": [q("/dashboard", **JULY)] * 10,
        "dashboard_overview_from_july": [q("/dashboard", **FROM_JULY)] * 10,
        "dashboard_course": [q("/dashboard/course", activity=c) for c in courses],
        "dashboard_course_one_unit_30d": [
            q("/dashboard/course", activity=c, unit="Enhet 7", period="30d") for c in courses
        ],
        "dashboard_course_july": [q("/dashboard/course", activity=c, **JULY) for c in courses],
        "dashboard_learners": [q("/dashboard/learners", activity=c) for c in courses],
    }
    host = f"{HOST}:{port}"
    for name, paths in pages.items():
        built = [request("GET", p, host, headers={"Cookie": cookie}) for p in paths]
        result = await run(
            HOST, port, lambda i, built=built: built[i] if i < len(built) else None, 1, len(built), 300
        )
        out[name] = result.summary()
        print(name, out[name], flush=True)


def write(out: dict[str, Any]) -> None:
    command = (
        f"python -m bench.leaders --statements {out['statements_target']} --cohorts {out['cohorts_target']}"
    )
    write_results("leaders", "Analytics for leaders", command, out)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.leaders", description=__doc__)
    parser.add_argument("--statements", type=int, default=1_000_000)
    parser.add_argument("--cohorts", type=int, default=200)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument(
        "--database", help="a database an earlier run filled (kept): ask the questions only, again"
    )
    parser.add_argument("--keep", action="store_true", help="keep the filled database for --database")
    parser.add_argument("--dashboard-only", action="store_true", help="ask only for the dashboard's pages")
    args = parser.parse_args()
    out = asyncio.run(main_async(args))
    if (args.dashboard_only or args.database) and (RESULTS / "leaders.json").exists():
        # What this run did not measure (the fill, or the questions) stays as the last run
        # measured it.
        out = {**json.loads((RESULTS / "leaders.json").read_text()), **out}
    write(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
