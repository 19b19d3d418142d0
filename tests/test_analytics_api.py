"""Analytics over HTTP, checked against figures computed here, independently of the server.

The data: two courses with three modules each, eight learners in two municipal units and
two teams, statements from two vendors, passes and fails, a voided pass, a group actor,
an anonymous group, statements without timestamp or duration, and out-of-order arrival.
"""

from __future__ import annotations

import csv
import io
import statistics
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from lrs.analytics import reads as analytics_reads
from lrs.store.database import Database
from lrs.store.db import create_engine
from lrs.xapi.timestamps import parse_timestamp
from tests.harness import make_credential, new_store, rollups_folded, run_cli

BASE = datetime(2026, 3, 2, 6, tzinfo=UTC)  # Monday 07:00 in Oslo
UNIT = "https://kommune.example.no/xapi/unit"
COMPLETED = "http://adlnet.gov/expapi/verbs/completed"
PASSED = "http://adlnet.gov/expapi/verbs/passed"
FAILED = "http://adlnet.gov/expapi/verbs/failed"
ATTEMPTED = "http://adlnet.gov/expapi/verbs/attempted"
EXPERIENCED = "http://adlnet.gov/expapi/verbs/experienced"
V2 = {"X-Experience-API-Version": "2.0.0"}
OSLO = ZoneInfo("Europe/Oslo")


def course(slug: str) -> str:
    return f"https://kurs.example.no/{slug}"


def learner(n: int) -> dict[str, Any]:
    return {
        "objectType": "Agent",
        "name": f"Ansatt {n}",
        "account": {"homePage": "https://idp.kommune.example.no", "name": f"ansatt{n}"},
    }


def ifi(agent: dict[str, Any]) -> str:
    a = agent["account"]
    return f"account:{a['homePage']}|{a['name']}"


def st(
    who: dict[str, Any],
    verb: str,
    obj: str,
    at: datetime | None,
    parent: str | None = None,
    unit: str | None = None,
    team: str | None = None,
    **result: Any,
) -> dict[str, Any]:
    s: dict[str, Any] = {"id": str(uuid.uuid4()), "actor": who, "verb": {"id": verb}, "object": {"id": obj}}
    if at is not None:
        s["timestamp"] = at.isoformat()
    context: dict[str, Any] = {}
    if parent:
        context["contextActivities"] = {"parent": [{"id": parent}]}
    if unit:
        context["extensions"] = {UNIT: unit}
    if team:
        context["team"] = {
            "objectType": "Group",
            "name": team,
            "account": {"homePage": "https://idp.kommune.example.no", "name": team},
        }
    if context:
        s["context"] = context
    if result:
        s["result"] = result
    return s


def dataset() -> tuple[list[dict[str, Any]], list[dict[str, Any]], str]:
    """(statements from vendor A, from vendor B, the id of the pass that will be voided)."""
    fire, m = course("brannvern"), [course(f"brannvern/modul{i}") for i in (1, 2, 3)]
    a: list[dict[str, Any]] = []
    b: list[dict[str, Any]] = []
    units = ["Oppvekst"] * 4 + ["Helse"] * 4
    for n in range(8):
        who, unit, team = learner(n), units[n], "Team Nord" if n % 2 else "Team Sør"
        start = BASE + timedelta(hours=n, minutes=5)
        vendor = a if n < 6 else b
        vendor.append(st(who, ATTEMPTED, fire, start, unit=unit, team=team))
        for i, module in enumerate(m[: 1 + n % 3]):
            vendor.append(
                st(
                    who,
                    EXPERIENCED,
                    module,
                    start + timedelta(minutes=10 * (i + 1)),
                    parent=fire,
                    unit=unit,
                    team=team,
                    duration=f"PT{5 + i}M",
                )
            )
        if n % 3 == 2:
            vendor.append(
                st(
                    who,
                    COMPLETED,
                    m[2],
                    start + timedelta(minutes=40),
                    parent=fire,
                    unit=unit,
                    completion=True,
                )
            )
    # Outcomes on the course: passes, fails (one learner fails, then passes), raw-only score.
    a.append(
        st(
            learner(0),
            PASSED,
            fire,
            BASE + timedelta(days=1),
            unit="Oppvekst",
            score={"scaled": 0.9},
            success=True,
            duration="PT20M",
        )
    )
    a.append(
        st(
            learner(1),
            FAILED,
            fire,
            BASE + timedelta(days=1, hours=1),
            unit="Oppvekst",
            score={"scaled": 0.3},
            success=False,
        )
    )
    a.append(
        st(
            learner(1),
            PASSED,
            fire,
            BASE + timedelta(days=2, hours=1),
            unit="Oppvekst",
            score={"raw": 80, "min": 0, "max": 100},
            success=True,
        )
    )
    a.append(
        st(learner(2), COMPLETED, fire, BASE + timedelta(days=1, hours=3), unit="Oppvekst", duration="PT1H")
    )
    b.append(
        st(
            learner(6),
            FAILED,
            fire,
            BASE + timedelta(days=3),
            unit="Helse",
            score={"scaled": 0.45},
            success=False,
        )
    )
    voided_pass = st(
        learner(7),
        PASSED,
        fire,
        BASE + timedelta(days=3, hours=2),
        unit="Helse",
        score={"scaled": 1.0},
        success=True,
    )
    b.append(voided_pass)
    # A group actor counts for each identified member; an anonymous group member set does too.
    a.append(
        st(
            {"objectType": "Group", "name": "Par", "member": [learner(3), learner(4)]},
            COMPLETED,
            fire,
            BASE + timedelta(days=4),
            unit="Oppvekst",
            duration="PT30M",
        )
    )
    # Another course with its own learners, and a statement without timestamp or duration.
    other = course("personvern")
    for n in range(8):
        a.append(
            st(
                learner(n),
                COMPLETED if n < 5 else ATTEMPTED,
                other,
                BASE + timedelta(days=5, hours=n),
                unit="Helse" if n % 2 else "Oppvekst",
            )
        )
    a.append(st(learner(0), ATTEMPTED, other, None))
    return a, b, voided_pass["id"]


# --- an independent reference -----------------------------------------------------------------


def members(actor: dict[str, Any]) -> list[dict[str, Any]]:
    return actor.get("member", []) if actor.get("objectType") == "Group" else [actor]


def scope(s: dict[str, Any]) -> set[str]:
    parents = s.get("context", {}).get("contextActivities", {}).get("parent", [])
    return {s["object"]["id"], *(p["id"] for p in parents)}


def seconds(duration: str) -> float:
    body = duration.removeprefix("PT")
    total, number = 0.0, ""
    for ch in body:
        if ch.isdigit() or ch == ".":
            number += ch
        else:
            total += float(number) * {"H": 3600, "M": 60, "S": 1}[ch]
            number = ""
    return total


def reference(statements: list[dict[str, Any]], activity: str) -> dict[str, dict[str, Any]]:
    """Per learner: the spec's definitions applied directly to the statements."""
    out: dict[str, dict[str, Any]] = {}
    for s in statements:
        if activity not in scope(s):
            continue
        when = datetime.fromisoformat(s["timestamp"])
        on_object = s["object"]["id"] == activity
        result = s.get("result", {})
        for m in members(s["actor"]):
            row = out.setdefault(
                ifi(m),
                {
                    "first": when,
                    "completed": None,
                    "passed": False,
                    "failed": False,
                    "score": None,
                    "time": 0.0,
                    "unit": None,
                    "last": when,
                },
            )
            row["first"] = min(row["first"], when)
            if when >= row["last"]:
                row["last"] = when
                row["unit"] = s.get("context", {}).get("extensions", {}).get(UNIT)
            row["time"] += seconds(result["duration"]) if "duration" in result else 0.0
            if not on_object:
                continue
            if s["verb"]["id"] in (COMPLETED, PASSED) or result.get("completion") is True:
                row["completed"] = when if row["completed"] is None else min(row["completed"], when)
            if s["verb"]["id"] == PASSED or result.get("success") is True:
                row["passed"] = True
            if s["verb"]["id"] == FAILED or result.get("success") is False:
                row["failed"] = True
            score = result.get("score", {})
            value = score.get("scaled")
            if value is None and "raw" in score:
                value = (score["raw"] - score["min"]) / (score["max"] - score["min"])
            if value is not None:
                row["score"] = value if row["score"] is None else max(row["score"], value)
    return out


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def expected_group(rows: list[dict[str, Any]]) -> dict[str, Any]:
    completed = [r for r in rows if r["completed"]]
    passed = [r for r in rows if r["passed"]]
    failed = [r for r in rows if r["failed"] and not r["passed"]]
    scores = sorted(r["score"] for r in rows if r["score"] is not None)
    times = [r["time"] for r in rows if r["time"] > 0]
    return {
        "learners_started": len(rows),
        "learners_completed": len(completed),
        "learners_passed": len(passed),
        "learners_failed": len(failed),
        "completion_rate": len(completed) / len(rows),
        "pass_rate": len(passed) / (len(passed) + len(failed)),
        "score_n": len(scores),
        "score_mean": statistics.fmean(scores),
        "score_median": median(scores),
        "score_tenths": [sum(1 for x in scores if x >= 0 and min(int(x * 10), 9) == t) for t in range(10)],
        "score_below_zero": sum(1 for x in scores if x < 0),
        "time_total": sum(times),
        "time_median": median(times),
        "ttc_median": median([(r["completed"] - r["first"]).total_seconds() for r in completed]),
    }


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def world(server) -> dict[str, Any]:
    """A store holding the dataset, with clients for two vendors and an analyst."""
    name = f"analytics-{uuid.uuid4().hex[:8]}"
    run_cli(server.database_url, "store", "create", name)
    run_cli(server.database_url, "store", "settings", name, "--set", "min_group_size=2")

    def cred(scopes: str, label: str) -> tuple[str, str]:
        return make_credential(server.database_url, scopes, name, label).auth

    vendor_a, vendor_b = (
        cred("statements/write,statements/read", "Kurs AS"),
        cred("statements/write", "Spill AS"),
    )
    analyst = cred("analytics/read", "Opplæringskontoret")
    hr = cred("analytics/learners", "HR")
    definer = cred("statements/write,define", "Katalog AS")
    a, b, voided = dataset()
    async with httpx.AsyncClient(base_url=server.xapi, headers=V2) as c:
        # Out of order: vendor B's later statements arrive first.
        for auth, batch in ((vendor_b, b), (vendor_a, a)):
            r = await c.post("/statements", json=batch, auth=auth)
            assert r.status_code == 200, r.text
        # The statement without timestamp got `stored` as its timestamp: read it back.
        no_ts = next(s for s in a if "timestamp" not in s)
        got = (await c.get("/statements", params={"statementId": no_ts["id"]}, auth=vendor_a)).json()
        no_ts["timestamp"] = got["timestamp"]
    await rollups_folded(server.database_url)
    return {
        "name": name,
        "a": a,
        "b": b,
        "voided": voided,
        "vendor_a": vendor_a,
        "vendor_b": vendor_b,
        "analyst": analyst,
        "hr": hr,
        "definer": definer,
        "server": server,
    }


async def analytics(world: dict[str, Any], path: str, who: str = "analyst", **params: Any) -> httpx.Response:
    """An analytics answer once every statement sent so far is folded into the rollups."""
    await rollups_folded(world["server"].database_url)
    async with httpx.AsyncClient(base_url=world["server"].url, auth=world[who]) as c:
        return await c.get("/analytics" + path, params=params)


def figures(response: httpx.Response) -> dict[str, Any]:
    """An answer's figures, without ``as_of`` (which moves with every write)."""
    body: dict[str, Any] = response.json()
    assert body.pop("as_of")
    return body


def approx(value: Any) -> Any:
    return pytest.approx(value, rel=1e-9, abs=1e-9)


def approx_all(value: Any) -> Any:
    """``value`` with every float in it, however deep, compared as ``approx``."""
    if isinstance(value, float):
        return approx(value)
    if isinstance(value, dict):
        return {k: approx_all(v) for k, v in value.items()}
    if isinstance(value, list):
        return [approx_all(v) for v in value]
    return value


# --- the tests --------------------------------------------------------------------------------


async def test_completion_matches_reference(world):
    fire = course("brannvern")
    rows = list(reference(world["a"] + world["b"], fire).values())
    want = expected_group(rows)
    r = await analytics(world, "/completion", activity=fire)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["suppressed_groups"] == 0
    [group] = body["groups"]
    assert group["group"] is None
    for key in ("learners_started", "learners_completed", "learners_passed", "learners_failed"):
        assert group[key] == want[key], key
    assert group["completion_rate"] == approx(want["completion_rate"])
    assert group["pass_rate"] == approx(want["pass_rate"])
    assert group["score"]["n"] == want["score_n"]
    assert group["score"]["mean"] == approx(want["score_mean"])
    assert group["score"]["median"] == approx(want["score_median"])
    assert group["score"]["tenths"] == want["score_tenths"]
    assert group["score"]["below_zero"] == want["score_below_zero"]
    assert sum(group["score"]["tenths"]) + group["score"]["below_zero"] == group["score"]["n"]
    assert group["time_spent_seconds"]["total"] == approx(want["time_total"])
    assert group["time_spent_seconds"]["median"] == approx(want["time_median"])
    assert group["median_time_to_complete_seconds"] == approx(want["ttc_median"])


async def test_completion_within_a_window(world):
    """Within since/until, only the statements in the window count (read from the hourly rollup)."""
    fire = course("brannvern")
    since, until = BASE + timedelta(hours=1), BASE + timedelta(days=3)
    inside = [s for s in world["a"] + world["b"] if since <= datetime.fromisoformat(s["timestamp"]) < until]
    want = expected_group(list(reference(inside, fire).values()))
    r = await analytics(world, "/completion", activity=fire, since=since.isoformat(), until=until.isoformat())
    [group] = r.json()["groups"]
    for key in ("learners_started", "learners_completed", "learners_passed", "learners_failed"):
        assert group[key] == want[key], key
    assert group["score"]["mean"] == approx(want["score_mean"])
    assert group["time_spent_seconds"]["median"] == approx(want["time_median"])
    assert group["median_time_to_complete_seconds"] == approx(want["ttc_median"])


async def test_completion_by_unit_with_suppression(world, server):
    other = course("personvern")
    rows = reference(world["a"] + world["b"], other)
    by_unit: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows.values():
        by_unit[row["unit"]].append(row)
    r = await analytics(world, "/completion", activity=other, group_by=f"extension:{UNIT}")
    body = r.json()
    groups = {g["group"]: g for g in body["groups"]}
    shown = {unit: rows_ for unit, rows_ in by_unit.items() if len(rows_) >= 2}
    assert set(groups) == set(shown)
    assert body["suppressed_groups"] == len(by_unit) - len(shown)
    for unit, members_ in shown.items():
        assert groups[unit]["learners_started"] == len(members_)
        assert groups[unit]["learners_completed"] == sum(1 for m in members_ if m["completed"])
    # With a minimum group size above the smaller unit, that unit is left out and counted.
    smallest = min(len(v) for v in by_unit.values())
    run_cli(
        server.database_url, "store", "settings", world["name"], "--set", f"min_group_size={smallest + 1}"
    )
    try:
        r = await analytics(world, "/completion", activity=other, group_by=f"extension:{UNIT}")
        body = r.json()
        assert body["suppressed_groups"] >= 1
        assert all(g["learners_started"] > smallest for g in body["groups"])
    finally:
        run_cli(server.database_url, "store", "settings", world["name"], "--set", "min_group_size=2")


async def test_completion_by_authority_and_team(world):
    fire = course("brannvern")
    r = await analytics(world, "/completion", activity=fire, group_by="authority")
    groups = {g["group"]: g["learners_started"] for g in r.json()["groups"]}
    # Each learner is grouped by the vendor of their latest statement on the course.
    assert set(groups) <= {"Kurs AS", "Spill AS"} and sum(groups.values()) == 8
    r = await analytics(world, "/completion", activity=fire, group_by="team")
    assert r.status_code == 200 and r.json()["groups"]


async def test_voiding_updates_the_figures(world):
    fire = course("brannvern")
    before = (await analytics(world, "/completion", activity=fire)).json()["groups"][0]
    async with httpx.AsyncClient(base_url=world["server"].xapi, headers=V2) as c:
        r = await c.post(
            "/statements",
            auth=world["vendor_a"],
            json={
                "actor": learner(7),
                "verb": {"id": "http://adlnet.gov/expapi/verbs/voided"},
                "object": {"objectType": "StatementRef", "id": world["voided"]},
            },
        )
        assert r.status_code == 200
    statements = [s for s in world["a"] + world["b"] if s["id"] != world["voided"]]
    want = expected_group(list(reference(statements, fire).values()))
    after = (await analytics(world, "/completion", activity=fire)).json()["groups"][0]
    assert after["learners_passed"] == want["learners_passed"] == before["learners_passed"] - 1
    assert after["learners_completed"] == want["learners_completed"]
    assert after["score"]["mean"] == approx(want["score_mean"])
    world["b"] = [s for s in world["b"] if s["id"] != world["voided"]]


async def test_engagement_series_by_day_in_oslo(world):
    since, until = BASE - timedelta(hours=6), BASE + timedelta(days=7, hours=-6)
    r = await analytics(
        world,
        "/engagement",
        interval="day",
        since=since.isoformat(),
        until=until.isoformat(),
        tz="Europe/Oslo",
    )
    assert r.status_code == 200, r.text
    series = r.json()["series"]
    expected: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"learners": set(), "n": 0, "done": 0, "time": 0.0}
    )
    for s in world["a"] + world["b"]:
        when = datetime.fromisoformat(s["timestamp"])
        if not since <= when < until:
            continue
        day = expected[when.astimezone(OSLO).date().isoformat()]
        day["learners"].update(ifi(m) for m in members(s["actor"]))
        day["n"] += 1
        result = s.get("result", {})
        # Statements count once; completions and time count for each learner in the actor.
        people = len(members(s["actor"]))
        done = s["verb"]["id"] in (COMPLETED, PASSED) or result.get("completion") is True
        day["done"] += people * done
        day["time"] += people * (seconds(result["duration"]) if "duration" in result else 0.0)
    first = since.astimezone(OSLO).date()
    last = (until - timedelta(microseconds=1)).astimezone(OSLO).date()
    days = [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
    hidden = [d for d in days if 0 < len(expected[d]["learners"]) < 2] if expected else []
    assert [p["period"] for p in series] == [d for d in days if d not in hidden]
    assert r.json()["suppressed_groups"] == len(hidden)
    for period in series:
        want = expected.get(period["period"])
        if want is None:
            assert period["statements"] == 0 and period["active_learners"] == 0
            continue
        assert period["active_learners"] == len(want["learners"])
        assert period["statements"] == want["n"]
        assert period["completions"] == want["done"]
        assert period["time_spent_seconds"] == approx(want["time"])


def store_wide(statements: list[dict[str, Any]], period: Any) -> dict[Any, dict[str, Any]]:
    """Store-wide figures per period (``period`` maps a timestamp to its period)."""
    out: dict[Any, dict[str, Any]] = defaultdict(lambda: {"learners": set(), "n": 0, "done": 0, "time": 0.0})
    for s in statements:
        row = out[period(datetime.fromisoformat(s["timestamp"]))]
        row["learners"].update(ifi(m) for m in members(s["actor"]))
        row["n"] += 1
        result = s.get("result", {})
        people = len(members(s["actor"]))
        row["done"] += people * (s["verb"]["id"] in (COMPLETED, PASSED) or result.get("completion") is True)
        row["time"] += people * (seconds(result["duration"]) if "duration" in result else 0.0)
    return out


def check_series(series: list[dict[str, Any]], want: dict[Any, dict[str, Any]]) -> None:
    shown = {p["period"]: p for p in series}
    for period, figures in want.items():
        if len(figures["learners"]) < 2:
            assert period not in shown, period  # suppressed at min_group_size=2
            continue
        got = shown[period]
        assert got["active_learners"] == len(figures["learners"]), period
        assert got["statements"] == figures["n"], period
        assert got["completions"] == figures["done"], period
        assert got["time_spent_seconds"] == approx(figures["time"]), period
    assert all(p["statements"] == 0 for k, p in shown.items() if k not in want)


async def test_store_wide_engagement_by_day_and_week(world):
    everything = world["a"] + world["b"]
    r = await analytics(world, "/engagement", interval="day")
    assert r.status_code == 200, r.text
    assert r.json()["tz"] == "Europe/Oslo"
    want = store_wide(everything, lambda t: t.astimezone(OSLO).date().isoformat())
    check_series(r.json()["series"], want)
    # Those figures come from the period table kept on write, which holds every day exactly.
    engine = create_async_engine(world["server"].database_url)
    try:
        async with engine.connect() as conn:
            kept = await conn.execute(
                text(
                    "SELECT analytics_period_start('day', p.period) AS day, p.learners, p.statements"
                    " FROM analytics_period p JOIN stores s ON s.id = p.store_id"
                    " WHERE s.name = :name AND p.kind = 'day' AND p.learners > 0"
                ),
                {"name": world["name"]},
            )
            days = {r.day.isoformat(): (r.learners, r.statements) for r in kept}
    finally:
        await engine.dispose()
    assert days == {day: (len(f["learners"]), f["n"]) for day, f in want.items()}
    # A window on whole Oslo weeks.
    since = datetime(2026, 3, 2, tzinfo=OSLO)
    r = await analytics(
        world,
        "/engagement",
        interval="week",
        since=since.isoformat(),
        until=(since + timedelta(days=7)).isoformat(),
    )
    series = r.json()["series"]
    assert [p["period"] for p in series] == ["2026-03-02"]
    week = [
        s for s in everything if since <= datetime.fromisoformat(s["timestamp"]) < since + timedelta(days=7)
    ]
    check_series(series, store_wide(week, lambda t: "2026-03-02"))


async def test_engagement_in_a_window_that_cuts_periods(world):
    """A window from Tuesday 09:00 to Saturday 09:00 (Oslo), and from Tuesday 09:00 on: the
    whole days and weeks come from the kept figures, the cut ones from the hours in the
    window only."""
    everything = world["a"] + world["b"]
    since, until = BASE + timedelta(days=1, hours=2), BASE + timedelta(days=5, hours=2)
    inside = [s for s in everything if since <= datetime.fromisoformat(s["timestamp"]) < until]
    on_day = lambda t: t.astimezone(OSLO).date().isoformat()  # noqa: E731
    # The data does cut both end days: the whole days hold more than the window's parts.
    whole, cut = store_wide(everything, on_day), store_wide(inside, on_day)
    assert whole["2026-03-03"]["n"] > cut["2026-03-03"]["n"] > 0
    assert whole["2026-03-07"]["n"] > cut["2026-03-07"]["n"] > 0
    to_now = [s for s in everything if since <= datetime.fromisoformat(s["timestamp"])]

    def on_week(t: datetime) -> str:
        day = t.astimezone(OSLO).date()
        return (day - timedelta(days=day.weekday())).isoformat()

    for interval, period in (("day", on_day), ("week", on_week)):
        for bounds, held in (({"until": until.isoformat()}, inside), ({}, to_now)):
            r = await analytics(world, "/engagement", interval=interval, since=since.isoformat(), **bounds)
            assert r.status_code == 200, r.text
            want = store_wide(held, period)
            check_series(r.json()["series"], want)
            shown = {p["period"] for p in r.json()["series"] if p["statements"]}
            assert shown == {k for k, v in want.items() if len(v["learners"]) >= 2}, (interval, bounds)


def weekday_hour(t: datetime, zone: ZoneInfo) -> tuple[int, int]:
    local = t.astimezone(zone)
    return (local.weekday(), local.hour)


async def test_store_wide_hours(world):
    r = await analytics(world, "/engagement/hours")
    want = store_wide(world["a"] + world["b"], lambda t: weekday_hour(t, OSLO))
    cells = {(c["weekday"], c["hour"]): c for c in r.json()["cells"]}
    assert len(cells) + r.json()["suppressed_groups"] == 7 * 24
    for key, figures in want.items():
        if len(figures["learners"]) < 2:
            assert key not in cells, key
            continue
        assert cells[key]["statements"] == figures["n"], key
        assert cells[key]["active_learners"] == len(figures["learners"]), key


async def test_changing_the_store_zone_recounts_periods(world, server):
    everything = world["a"] + world["b"]
    run_cli(server.database_url, "store", "settings", world["name"], "--set", "timezone=UTC")
    try:
        r = await analytics(world, "/engagement", interval="day")
        assert r.json()["tz"] == "UTC"
        check_series(
            r.json()["series"], store_wide(everything, lambda t: t.astimezone(UTC).date().isoformat())
        )
        r = await analytics(world, "/engagement/hours")
        want = store_wide(everything, lambda t: weekday_hour(t, ZoneInfo("UTC")))
        cells = {(c["weekday"], c["hour"]): c for c in r.json()["cells"]}
        assert all(cells[k]["statements"] == v["n"] for k, v in want.items() if len(v["learners"]) >= 2)
    finally:
        run_cli(server.database_url, "store", "settings", world["name"], "--set", "timezone=null")
    r = await analytics(world, "/engagement", interval="day")
    assert r.json()["tz"] == "Europe/Oslo"
    check_series(r.json()["series"], store_wide(everything, lambda t: t.astimezone(OSLO).date().isoformat()))


async def test_voiding_restores_every_summary(world):
    """A statement and its voiding leave the store-wide and activity figures as they were."""
    fire = course("brannvern")
    asks = [
        ("/engagement", {"interval": "day"}),
        ("/engagement", {"interval": "month"}),
        ("/engagement/hours", {}),
        ("/activities", {}),
        ("/completion", {"activity": fire}),
    ]
    before = [figures(await analytics(world, path, **params)) for path, params in asks]
    extra = st(learner(9), COMPLETED, fire, BASE + timedelta(minutes=30), unit="Helse", duration="PT7M")
    async with httpx.AsyncClient(base_url=world["server"].xapi, headers=V2) as c:
        assert (await c.post("/statements", json=extra, auth=world["vendor_a"])).status_code == 200
        during = [figures(await analytics(world, path, **params)) for path, params in asks]
        day = next(p for p in during[0]["series"] if p["period"] == "2026-03-02")
        was = next(p for p in before[0]["series"] if p["period"] == "2026-03-02")
        assert day["active_learners"] == was["active_learners"] + 1
        assert day["completions"] == was["completions"] + 1
        assert during[4]["groups"][0]["learners_started"] == before[4]["groups"][0]["learners_started"] + 1
        voiding = {
            "actor": learner(9),
            "verb": {"id": "http://adlnet.gov/expapi/verbs/voided"},
            "object": {"objectType": "StatementRef", "id": extra["id"]},
        }
        assert (await c.post("/statements", json=voiding, auth=world["vendor_a"])).status_code == 200
    after = [figures(await analytics(world, path, **params)) for path, params in asks]
    assert after == before


async def test_hours_heatmap(world):
    fire = course("brannvern")
    r = await analytics(world, "/engagement/hours", activity=fire, tz="Europe/Oslo")
    cells = {(c["weekday"], c["hour"]): c for c in r.json()["cells"]}
    counts: dict[tuple[int, int], int] = defaultdict(int)
    for s in world["a"] + world["b"]:
        if fire in scope(s):
            local = datetime.fromisoformat(s["timestamp"]).astimezone(OSLO)
            counts[(local.weekday(), local.hour)] += 1
    shown = {k: v["statements"] for k, v in cells.items() if v["statements"]}
    suppressed = r.json()["suppressed_groups"]
    # Cells with a single learner are suppressed at min_group_size=2; the rest must match.
    for key, statements_ in shown.items():
        assert counts[key] == statements_, key
    assert len(shown) + suppressed == len(counts)


async def test_dropoff_orders_modules(world):
    fire = course("brannvern")
    r = await analytics(world, "/dropoff", activity=fire)
    steps = r.json()["steps"]
    modules = [course(f"brannvern/modul{i}") for i in (1, 2, 3)]
    everything = world["a"] + world["b"]
    refs = {m: reference(everything, m) for m in modules}
    starts = {k: row["first"] for k, row in reference(everything, fire).items()}

    def typical_offset(module: str) -> float | None:
        return median([(row["first"] - starts[k]).total_seconds() for k, row in refs[module].items()])

    order = sorted(modules, key=lambda m: (typical_offset(m), m))
    assert [s["activity"] for s in steps] == order
    for step in steps:
        ref = refs[step["activity"]]
        assert step["learners_reached"] == len(ref)
        assert step["learners_completed"] == sum(1 for row in ref.values() if row["completed"])


async def test_dropoff_follows_each_learners_own_order(server):
    """Learners who start weeks apart and skip modules: the order is the order each learner
    takes the modules in, not the order of absolute first-seen times (which put the modules
    that only late starters took last)."""
    name = new_store(server.database_url, "dropoff", min_group_size="2")
    writer = make_credential(server.database_url, "statements/write", name).auth
    analyst = make_credential(server.database_url, "analytics/read", name).auth
    fire = course(f"brannvern-{uuid.uuid4().hex[:6]}")
    modules = [f"{fire}/modul{i}" for i in (1, 2, 3, 4)]
    # Three early starters (days 0, 1 and 3) begin at module 2; two late starters (weeks 5
    # and 6) take module 1 too, and one of them skips module 3.
    plans = {0: modules[1:], 1: modules[1:], 3: modules[1:], 35: modules, 42: [*modules[:2], modules[3]]}
    batch = []
    for n, (day, taken) in enumerate(plans.items()):
        who, start = learner(100 + n), BASE + timedelta(days=day)
        batch.append(st(who, ATTEMPTED, fire, start))
        for module in taken:
            batch.append(
                st(who, EXPERIENCED, module, start + timedelta(hours=modules.index(module) + 1), fire)
            )
    async with httpx.AsyncClient(base_url=server.url, headers=V2) as c:
        assert (await c.post("/xapi/statements", json=batch, auth=writer)).status_code == 200
        await rollups_folded(server.database_url)
        r = await c.get("/analytics/dropoff", params={"activity": fire}, auth=analyst)
    assert r.status_code == 200, r.text
    steps = r.json()["steps"]
    assert [s["activity"] for s in steps] == modules
    reached = {m: sum(1 for taken in plans.values() if m in taken) for m in modules}
    assert [s["learners_reached"] for s in steps] == [reached[m] for m in modules] == [2, 5, 4, 5]


async def test_learners_needs_its_own_scope(world):
    fire = course("brannvern")
    assert (await analytics(world, "/learners", activity=fire)).status_code == 403
    r = await analytics(world, "/learners", who="hr", activity=fire)
    assert r.status_code == 200
    rows = {row["learner"]: row for row in r.json()["learners"]}
    ref = reference(world["a"] + world["b"], fire)
    assert set(rows) == set(ref)
    for key, want in ref.items():
        status = (
            "passed"
            if want["passed"]
            else "failed"
            if want["failed"]
            else "completed"
            if want["completed"]
            else "in_progress"
        )
        assert rows[key]["status"] == status, key
        assert rows[key]["first_seen"].endswith("Z") and rows[key]["last_seen"].endswith("Z")
        assert rows[key]["time_spent_seconds"] == approx(want["time"])
    assert rows[ifi(learner(1))]["score"] == approx(0.8)
    assert (await analytics(world, "/completion", who="hr", activity=fire)).status_code == 403


async def test_activities_list_sorted_and_paged(world):
    everything = world["a"] + world["b"]
    ids = sorted({a for s in everything for a in scope(s)})
    started = {a: len(reference(everything, a)) for a in ids}
    listed = [a for a in ids if started[a] >= 2]
    want = sorted(sorted(listed), key=lambda a: started[a], reverse=True)
    r = await analytics(world, "/activities", sort="learners_started", order="desc", limit=2)
    body = r.json()
    assert [a["activity"] for a in body["activities"]] == want[:2]
    assert body["total"] == len(want)
    assert body["suppressed_groups"] == len(ids) - len(listed)
    page2 = (
        await analytics(world, "/activities", sort="learners_started", order="desc", limit=2, offset=2)
    ).json()
    assert [a["activity"] for a in page2["activities"]] == want[2:4]
    for row in body["activities"] + page2["activities"]:
        ref = reference(everything, row["activity"])
        assert row["learners_completed"] == sum(1 for v in ref.values() if v["completed"])
        assert row["time_spent_seconds"] == approx(sum(v["time"] for v in ref.values()))


async def check_activities_in(
    world: dict[str, Any], since: datetime, until: datetime | None = None
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """The activity list over [since, until), each row checked against the statements inside
    (the reference); returns the rows and the reference, by activity."""
    everything = world["a"] + world["b"]
    inside = [
        s
        for s in everything
        if since <= datetime.fromisoformat(s["timestamp"])
        and (until is None or datetime.fromisoformat(s["timestamp"]) < until)
    ]
    want = {a: reference(inside, a) for a in sorted({a for s in inside for a in scope(s)})}
    params = {"since": since.isoformat(), "limit": 1000}
    if until is not None:
        params["until"] = until.isoformat()
    listed = (await analytics(world, "/activities", **params)).json()["activities"]
    got = {row["activity"]: row for row in listed}
    assert got and set(got) == {a for a, ref in want.items() if len(ref) >= 2}
    for a, row in got.items():
        assert row["learners_started"] == len(want[a]), a
        assert row["learners_completed"] == sum(1 for v in want[a].values() if v["completed"]), a
        assert row["time_spent_seconds"] == approx(sum(v["time"] for v in want[a].values())), a
    return got, want


async def test_activities_within_a_window(world):
    """Within since/until, each activity's learners, completions and time are those of the
    statements in the window; grouped by unit, each learner counts under the unit of their
    latest statement on the activity (of all time)."""
    everything = world["a"] + world["b"]
    since, until = BASE + timedelta(hours=1), BASE + timedelta(days=3)
    got, want = await check_activities_in(world, since, until)
    window = {"since": since.isoformat(), "until": until.isoformat(), "limit": 1000}
    all_time = (await analytics(world, "/activities", limit=1000)).json()["activities"]
    assert {r["activity"]: r["learners_started"] for r in all_time} != {
        a: r["learners_started"] for a, r in got.items()
    }

    grouped = await analytics(world, "/activities", group_by=f"extension:{UNIT}", **window)
    rows = {(r["activity"], r["group"]): r for r in grouped.json()["activities"]}
    expected: dict[tuple[str, Any], list[dict[str, Any]]] = defaultdict(list)
    for a, ref in want.items():
        units = reference(everything, a)
        for learner_ifi, v in ref.items():
            expected[(a, units[learner_ifi]["unit"])].append(v)
    assert set(rows) == {k for k, v in expected.items() if len(v) >= 2}
    for key, row in rows.items():
        assert row["learners_started"] == len(expected[key]), key
        assert row["learners_completed"] == sum(1 for v in expected[key] if v["completed"]), key


def _local_month(year: int, month: int) -> datetime:
    """The first instant of a month in Oslo (the store's zone)."""
    return datetime(year + (month - 1) // 12, (month - 1) % 12 + 1, 1, tzinfo=ZoneInfo("Europe/Oslo"))


def _after_next_month() -> datetime:
    now = datetime.now(UTC)
    return _local_month(now.year, now.month + 2)


@pytest.mark.parametrize(
    "window",
    [
        # February and March, whole: their month rows alone.
        (lambda: _local_month(2026, 2), lambda: _local_month(2026, 4)),
        # A cut end (from the third day of the data) and whole months up to the statement
        # stored today, which has no timestamp of its own.
        (lambda: BASE + timedelta(days=2), _after_next_month),
        # Cut at both ends of one whole month: late February to a day into April.
        (lambda: datetime(2026, 2, 20, tzinfo=UTC), lambda: datetime(2026, 4, 2, tzinfo=UTC)),
    ],
)
async def test_activities_within_whole_months(world, window):
    """A window holding whole months of the store's zone is counted from the month rows, and
    from the hourly rows only at its cut ends: each activity's learners, completions and
    time are still those of the statements in the window."""
    since, until = window[0](), window[1]()
    assert analytics_reads._inner_periods(analytics_reads.Window(since, until), "month", "Europe/Oslo")
    await check_activities_in(world, since, until)


@pytest.mark.parametrize(
    ("window", "among"),
    [
        ((None, None), (None, None)),
        ((None, None), (f"extension:{UNIT}", None)),
        ((timedelta(hours=1), timedelta(days=3)), (None, None)),
        ((timedelta(hours=1), timedelta(days=3)), (f"extension:{UNIT}", None)),
        ((timedelta(days=2), None), (None, None)),
        ((timedelta(days=-30), timedelta(days=60)), (None, None)),  # whole months, cut at both ends
    ],
)
async def test_activity_summaries_read_in_parts_are_the_whole(world, window, among):
    """A window's list is read in parts at once, each narrowed to some activities (``only``):
    the parts add up to the list read whole, whichever way the list is counted."""
    since, until = (None if w is None else BASE + w for w in window)
    frame, whose = analytics_reads.Window(since, until), analytics_reads.Among(*among)
    engine = create_engine(world["server"].database_url, pool_size=3)
    try:
        db = Database(engine)
        async with engine.connect() as c:
            found = await c.execute(text("SELECT id FROM stores WHERE name = :n"), {"n": world["name"]})
            store = found.scalar_one()

        async def whole(c: Any, only: list[str] | None = None) -> list[Any]:
            return await analytics_reads.activity_summaries(c, store, frame, whose, only=only)

        everything = await analytics_reads.read(db, whole, "test")
        in_parts = await analytics_reads.read_activity_summaries(db, "test", store, frame, whose)
        activities = sorted({s.activity for s in everything})
        some = await analytics_reads.read(db, lambda c: whole(c, activities[::2]), "test")
    finally:
        await engine.dispose()
    assert len(activities) >= 2
    key = attrgetter("activity", "group")
    assert sorted(in_parts, key=repr) == sorted(everything, key=repr)
    assert sorted(some, key=repr) == sorted(
        (s for s in everything if s.activity in activities[::2]), key=repr
    )
    assert {key(s) for s in some} < {key(s) for s in everything}


def test_balanced_parts_put_the_heaviest_apart():
    weights = [("programme", 100.0), *((f"course {n}", 9.0) for n in range(10)), ("quiet", 0.0)]
    parts = analytics_reads._balanced(weights, 2)
    assert parts[0] == ["programme"]
    assert sorted(parts[1]) == sorted(a for a, _ in weights[1:])
    three = analytics_reads._balanced([(str(n), float(n)) for n in range(1, 10)], 3)
    sums = [sum(int(a) for a in part) for part in three]
    assert sum(sums) == 45 and max(sums) - min(sums) <= 2
    assert analytics_reads._balanced([("one", 1.0)], 2) == [["one"]]
    assert analytics_reads._balanced([], 2) == []


@pytest.mark.parametrize(
    "since",
    [
        timedelta(days=-1),
        timedelta(hours=1),
        timedelta(days=2),
        timedelta(days=4),
        timedelta(days=5, hours=3),
    ],
)
async def test_activities_since_an_hour_until_now(world, since):
    """A window open to the present is counted from the kept totals when it holds every
    statement, else from its whole months' rows and the hours before them: the figures are
    those of the statements inside, whichever way."""
    await check_activities_in(world, BASE + since)


async def test_csv_output(world):
    fire = course("brannvern")
    r = await analytics(world, "/completion", activity=fire, format="csv")
    assert r.headers["content-type"].startswith("text/csv")
    [row] = list(csv.DictReader(io.StringIO(r.text)))
    assert row["learners_started"] == "8" and "score.median" in row
    body = (await analytics(world, "/completion", activity=fire)).json()
    assert [row[f"score.tenths.{t}"] for t in range(10)] == [
        str(n) for n in body["groups"][0]["score"]["tenths"]
    ]
    async with httpx.AsyncClient(base_url=world["server"].url, auth=world["analyst"]) as c:
        r = await c.get("/analytics/engagement", params={"interval": "week"}, headers={"Accept": "text/csv"})
        assert r.text.splitlines()[0].startswith("period,active_learners")
        # CSV rows cannot say what was left out; the headers say it, as the JSON does.
        by_hour = await c.get("/analytics/engagement/hours", params={"format": "csv"})
        as_json = (await c.get("/analytics/engagement/hours")).json()
    assert as_json["suppressed_groups"] > 0
    assert by_hour.headers["X-Analytics-Suppressed-Groups"] == str(as_json["suppressed_groups"])
    assert parse_timestamp(by_hour.headers["X-Analytics-As-Of"]) is not None


@pytest.mark.parametrize(
    ("path", "params", "names"),
    [
        ("/completion", {"activity": course("brannvern"), "since": "2026-03-02T06:30:00Z"}, "since"),
        ("/completion", {"activity": "not an iri"}, "activity"),
        ("/completion", {"activity": course("brannvern"), "group_by": "colour"}, "group_by"),
        ("/engagement", {"tz": "Mars/Olympus"}, "tz"),
        ("/engagement", {"interval": "year"}, "interval"),
        ("/engagement", {"since": "2026-03-03T00:00:00Z", "until": "2026-03-02T00:00:00Z"}, "since"),
    ],
)
async def test_bad_parameters_are_400(world, path, params, names):
    r = await analytics(world, path, **params)
    assert r.status_code == 400, r.text
    assert names in r.json()["message"]


async def test_other_stores_and_scopes_see_nothing(world, server, credential):
    fire = course("brannvern")
    async with httpx.AsyncClient(base_url=server.url) as c:
        r = await c.get("/analytics/completion", params={"activity": fire}, auth=credential.auth)
        assert r.status_code == 200  # `all` in the default store: none of these learners
        assert r.json()["groups"] == [] or r.json()["groups"][0]["learners_started"] == 0
        r = await c.get("/analytics/completion", params={"activity": fire}, auth=world["vendor_a"])
        assert r.status_code == 403


async def test_rebuild_reproduces_the_rollup(world, server):
    """The same figures after a rebuild. Means are compared as floats: the rebuild stores the
    learners' rows in key order, the fold as they came, and a float mean of the same values
    read in another order may differ in its last digit (0.7875 against 0.7875000000000001)."""
    fire = course("brannvern")
    before = figures(await analytics(world, "/completion", activity=fire))
    run_cli(server.database_url, "analytics", "rebuild", "--store", world["name"])
    assert figures(await analytics(world, "/completion", activity=fire)) == approx_all(before)


async def test_names_come_from_canonical_definitions(world):
    """Runs last: it adds a statement. Names follow Accept-Language, for the page shown."""
    module = course("brannvern/modul1")
    named = st(learner(0), EXPERIENCED, module, BASE + timedelta(days=6), parent=course("brannvern"))
    named["object"]["definition"] = {
        "name": {"nb-NO": "Modul 1: Slukking", "en-US": "Module 1: Extinguishing"}
    }
    async with httpx.AsyncClient(base_url=world["server"].xapi, headers=V2) as c:
        r = await c.post("/statements", json=named, auth=world["definer"])
        assert r.status_code == 200, r.text
    await rollups_folded(world["server"].database_url)
    async with httpx.AsyncClient(base_url=world["server"].url, auth=world["analyst"]) as c:
        listed = await c.get(
            "/analytics/activities",
            params={"sort": "activity", "order": "asc"},
            headers={"Accept-Language": "en"},
        )
        rows = {row["activity"]: row["name"] for row in listed.json()["activities"]}
        assert rows[module] == "Module 1: Extinguishing"
        assert rows[course("brannvern")] is None  # no definition was ever sent for it
        steps = await c.get(
            "/analytics/dropoff", params={"activity": course("brannvern")}, headers={"Accept-Language": "nb"}
        )
        names = {step["activity"]: step["name"] for step in steps.json()["steps"]}
        assert names[module] == "Modul 1: Slukking"


async def test_activities_without_a_definition_are_named_as_their_statements_name_them(server):
    """Names sent by a credential without `define` do not become canonical, but analytics
    still call the activity by them (the latest statement's, language by language)."""
    name = new_store(server.database_url, "names", min_group_size="1")
    writer = make_credential(server.database_url, "statements/write", name).auth
    analyst = make_credential(server.database_url, "analytics/read", name).auth
    fire, quiz = course(f"brannvern-{uuid.uuid4().hex[:6]}"), course(f"quiz-{uuid.uuid4().hex[:6]}")
    first = st(learner(1), EXPERIENCED, fire, BASE)
    first["object"]["definition"] = {"name": {"nb": "Brannvern", "en": "Fire safety"}}
    later = st(learner(2), EXPERIENCED, fire, BASE + timedelta(hours=1))
    later["object"]["definition"] = {"name": {"nb": "Brannvern 2027"}}
    unnamed = st(learner(1), EXPERIENCED, quiz, BASE)
    async with httpx.AsyncClient(base_url=server.url, headers=V2) as c:
        for body in (first, later, unnamed):
            assert (await c.post("/xapi/statements", json=body, auth=writer)).status_code == 200
        await rollups_folded(server.database_url)
        names = {}
        for language in ("nb", "en"):
            r = await c.get("/analytics/activities", auth=analyst, headers={"Accept-Language": language})
            names[language] = {row["activity"]: row["name"] for row in r.json()["activities"]}
    assert names["nb"][fire] == "Brannvern 2027" and names["en"][fire] == "Fire safety"
    assert names["nb"][quiz] is None
