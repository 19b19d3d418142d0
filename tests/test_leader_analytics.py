"""Analytics for leaders over HTTP: target groups (cohorts) and mandatory training, learning
elements, self-assessment, platforms and languages, cmi5 sessions and cost per completion.

Every figure is checked against one computed here from the statements and the membership
plan, by the definitions in the README, independently of the server.

The municipality: Kommune > Helse > {Hjemmetjeneste, Sykehjem}, Kommune > Oppvekst > Skole.
Sixteen employees; on 1 February one moves from home care to the school and one, who had
already started the course, joins the nursing home. Helse must take the fire-safety course by
1 March, Skole by 1 April.
"""

from __future__ import annotations

import csv
import io
import statistics
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.harness import make_credential, new_store, rollups_folded

V2 = {"X-Experience-API-Version": "2.0.0"}
OSLO = ZoneInfo("Europe/Oslo")
ADL = "http://adlnet.gov/expapi/verbs/"
ATTEMPTED, EXPERIENCED, COMPLETED, PASSED, FAILED = (
    ADL + v for v in ("attempted", "experienced", "completed", "passed", "failed")
)
LAUNCHED, INITIALIZED, TERMINATED = (ADL + v for v in ("launched", "initialized", "terminated"))
ABANDONED, SATISFIED, WAIVED = (
    "https://w3id.org/xapi/adl/verbs/" + v for v in ("abandoned", "satisfied", "waived")
)
RATED = "http://id.tincanapi.com/verb/rated"
CMI5_CATEGORY = "https://w3id.org/xapi/cmi5/context/categories/cmi5"
SESSION = "https://w3id.org/xapi/cmi5/context/extensions/sessionid"
COMPLETION_VERBS = {COMPLETED, PASSED, SATISFIED, WAIVED}

FIRE = "https://kurs.example.no/brannvern-2026"
MODULES = [f"{FIRE}/modul{i}" for i in (1, 2, 3)]
CMI5_COURSE = "https://lms.example.no/cmi5/hlr"
CMI5_AU = "https://lms.example.no/cmi5/hlr/au1"

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = datetime(2026, 2, 1, tzinfo=UTC)
TREE = {
    "Kommune": None,
    "Helse": "Kommune",
    "Hjemmetjeneste": "Helse",
    "Sykehjem": "Helse",
    "Oppvekst": "Kommune",
    "Skole": "Oppvekst",
}
BEFORE = {"Hjemmetjeneste": [0, 1, 2, 3, 4, 5], "Sykehjem": [6, 7, 8, 9], "Skole": [10, 11, 12, 13, 14]}
AFTER = {"Hjemmetjeneste": [0, 1, 2, 3, 4], "Sykehjem": [6, 7, 8, 9, 15], "Skole": [5, 10, 11, 12, 13, 14]}
DUE = {"Helse": datetime(2026, 3, 1, tzinfo=UTC), "Skole": datetime(2026, 4, 1, tzinfo=UTC)}
MIN_GROUP = 3


def person(n: int) -> dict[str, Any]:
    return {
        "objectType": "Agent",
        "name": f"Ansatt {n}",
        "account": {"homePage": "https://hr.kommune.example.no", "name": f"a{n}"},
    }


def ifi(n: int) -> str:
    return f"account:https://hr.kommune.example.no|a{n}"


def day(month: int, d: int, hour: int = 9) -> datetime:
    return datetime(2026, month, d, hour, tzinfo=UTC)


# Each employee's usual platform and language.
HOME = {
    n: (
        "app" if n in (0, 3, 5, 9, 10, 11, 15) else "web",
        "nn-NO" if n == 1 else "en" if n in (7, 14) else "nb-NO",
    )
    for n in range(16)
}


def st(
    n: int,
    verb: str,
    obj: str,
    at: datetime,
    platform: str | None = None,
    parent: str | None = None,
    **result: Any,
) -> dict[str, Any]:
    home, language = HOME[n]
    context: dict[str, Any] = {"platform": platform or home, "language": language}
    if parent:
        context["contextActivities"] = {"parent": [{"id": parent}]}
    s: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "actor": person(n),
        "verb": {"id": verb},
        "object": {"id": obj},
        "timestamp": at.isoformat(),
        "context": context,
    }
    if result:
        s["result"] = result
    return s


def course_statements() -> list[dict[str, Any]]:
    """The fire-safety course: who started when, what they did."""
    out: list[dict[str, Any]] = []

    def begin(n: int, start: datetime, modules: int, platform: str | None = None) -> None:
        out.append(st(n, ATTEMPTED, FIRE, start, platform))
        for i in range(modules):
            at = start + timedelta(hours=i + 1)
            out.append(
                st(n, EXPERIENCED, MODULES[i], at, platform, parent=FIRE, duration=f"PT{10 + 5 * i + n}M")
            )

    # L0 starts on the web and goes on in the app: the app is their latest platform.
    begin(0, day(1, 5), 3, "web")
    out.append(st(0, PASSED, FIRE, day(1, 10), score={"scaled": 0.9}, success=True, duration="PT20M"))
    begin(1, day(1, 6), 3)
    out.append(st(1, PASSED, FIRE, day(2, 20), score={"raw": 70, "min": 0, "max": 100}))
    begin(2, day(1, 7), 2)
    out.append(st(2, FAILED, FIRE, day(1, 15), score={"scaled": 0.3}, success=False))
    begin(3, day(1, 8), 1)
    # L4 never starts.
    begin(5, day(1, 9), 3)
    out.append(st(5, COMPLETED, FIRE, day(3, 10), completion=True))
    begin(6, day(1, 12), 3)
    out.append(st(6, PASSED, FIRE, day(3, 5), score={"scaled": 0.8}, success=True))
    begin(7, day(1, 13), 1)
    # L8 never starts.
    begin(9, day(1, 14), 3)
    out.append(st(9, PASSED, FIRE, day(1, 25), score={"scaled": 1.0}, success=True))
    begin(10, day(1, 6, 14), 3)
    out.append(st(10, PASSED, FIRE, day(1, 12), score={"scaled": 0.6}, success=True))
    begin(11, day(1, 7, 15), 2)
    # L12 never starts.
    begin(13, day(1, 8, 16), 3)
    out.append(st(13, FAILED, FIRE, day(1, 20), score={"scaled": 0.4}, success=False))
    out.append(st(13, PASSED, FIRE, day(2, 10), score={"scaled": 0.75}, success=True))
    begin(14, day(1, 9, 17), 3)
    out.append(st(14, COMPLETED, FIRE, day(2, 5)))
    begin(15, day(1, 5, 18), 1)
    # A quiz in module 3, passed or failed, with scores (the element that teaches).
    for n, scaled in ((0, 0.8), (1, 0.55), (5, 0.9), (6, 0.35), (9, 0.95), (13, 0.6)):
        verb = PASSED if scaled >= 0.5 else FAILED
        out.append(
            st(
                n,
                verb,
                MODULES[2],
                day(1, 26, 10),
                parent=FIRE,
                score={"scaled": scaled},
                success=scaled >= 0.5,
            )
        )
    return out


def rating_statements() -> list[dict[str, Any]]:
    """Participants rate the course on two scales, one without raw values, one twice; and
    rate modules (self-assessment of the elements)."""

    def rate(n: int, obj: str, at: datetime, **score: Any) -> dict[str, Any]:
        response = score.pop("response", None)
        result: dict[str, Any] = {"score": score}
        if response:
            result["response"] = response
        return st(n, RATED, obj, at, parent=FIRE if obj != FIRE else None, **result)

    return [
        rate(0, FIRE, day(1, 11), raw=5, min=1, max=5, response="Veldig nyttig"),
        rate(1, FIRE, day(2, 21), raw=4, min=1, max=5),
        rate(6, FIRE, day(3, 6), raw=8, min=0, max=10, response="Bra, men lang"),
        rate(9, FIRE, day(1, 26), raw=3, min=1, max=5),
        rate(9, FIRE, day(1, 27), raw=4, min=1, max=5),  # the later rating counts
        rate(10, FIRE, day(1, 13), scaled=0.5),
        rate(13, FIRE, day(2, 11), raw=9, min=0, max=10),
        rate(0, MODULES[0], day(1, 5, 12), raw=4, min=1, max=5),
        rate(3, MODULES[0], day(1, 8, 12), raw=2, min=1, max=5),
        rate(6, MODULES[0], day(1, 12, 12), raw=5, min=1, max=5),
        rate(5, MODULES[1], day(1, 9, 13), raw=9, min=0, max=10),
    ]


def cmi5_statements() -> list[dict[str, Any]]:
    """Three learners launched by an LMS under cmi5: two sessions each for two of them (one
    session abandoned), a waiver for the third."""
    out: list[dict[str, Any]] = []

    def cmi5(
        n: int, verb: str, obj: str, at: datetime, session: str, registration: str, **result: Any
    ) -> None:
        context = {
            "registration": registration,
            "contextActivities": {"grouping": [{"id": CMI5_COURSE}], "category": [{"id": CMI5_CATEGORY}]},
            "extensions": {SESSION: session},
        }
        if obj == CMI5_COURSE:
            context["contextActivities"] = {"category": [{"id": CMI5_CATEGORY}]}
        s = {
            "id": str(uuid.uuid4()),
            "actor": person(n),
            "verb": {"id": verb},
            "object": {"id": obj},
            "timestamp": at.isoformat(),
            "context": context,
        }
        if result:
            s["result"] = result
        out.append(s)

    def session(n: int, start: datetime, registration: str, *steps: tuple[str, int, dict[str, Any]]) -> None:
        sid = str(uuid.uuid4())
        cmi5(n, LAUNCHED, CMI5_AU, start, sid, registration)
        cmi5(n, INITIALIZED, CMI5_AU, start + timedelta(seconds=5), sid, registration)
        for verb, minutes, result in steps:
            cmi5(
                n,
                verb,
                CMI5_AU,
                start + timedelta(minutes=minutes),
                sid,
                registration,
                duration=f"PT{minutes}M",
                **result,
            )

    for n, registration in ((20, str(uuid.uuid4())), (21, str(uuid.uuid4())), (22, str(uuid.uuid4()))):
        if n == 20:
            session(n, day(4, 1), registration, (TERMINATED, 10, {}))
            session(
                n,
                day(4, 2),
                registration,
                (COMPLETED, 20, {"completion": True}),
                (PASSED, 20, {"success": True, "score": {"scaled": 0.85}}),
                (TERMINATED, 25, {}),
            )
        elif n == 21:
            session(n, day(4, 1), registration, (ABANDONED, 15, {}))
            session(n, day(4, 3), registration, (COMPLETED, 12, {"completion": True}), (TERMINATED, 14, {}))
        else:
            session(n, day(4, 1), registration, (TERMINATED, 5, {}))
            cmi5(
                n,
                WAIVED,
                CMI5_AU,
                day(4, 4),
                str(uuid.uuid4()),
                registration,
                extensions={"https://w3id.org/xapi/cmi5/result/extensions/reason": "Tested out"},
            )
        cmi5(n, SATISFIED, CMI5_COURSE, day(4, 5), str(uuid.uuid4()), registration)
    return out


# --- the reference ----------------------------------------------------------------------------


def learner_of(s: dict[str, Any]) -> int:
    return int(s["actor"]["account"]["name"][1:])


def when(s: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(s["timestamp"])


def in_scope(s: dict[str, Any], activity: str) -> bool:
    activities = s.get("context", {}).get("contextActivities", {})
    return s["object"]["id"] == activity or any(
        a["id"] == activity for kind in ("parent", "grouping") for a in activities.get(kind, [])
    )


def minutes(duration: str) -> float:
    return float(duration.removeprefix("PT").removesuffix("M")) * 60


def reference(
    statements: list[dict[str, Any]],
    activity: str,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[int, dict[str, Any]]:
    """Per learner, the README's definitions applied to the statements in the window."""
    out: dict[int, dict[str, Any]] = {}
    latest: dict[int, dict[str, Any]] = {}
    for s in statements:
        if not in_scope(s, activity):
            continue
        n = learner_of(s)
        if n not in latest or when(s) >= when(latest[n]):
            latest[n] = s
        if (since and when(s) < since) or (until and when(s) >= until):
            continue
        row = out.setdefault(
            n,
            {
                "first": when(s),
                "last": when(s),
                "completed": None,
                "passed": False,
                "failed": False,
                "score": None,
                "time": 0.0,
                "sessions": 0,
                "abandoned": 0,
                "rating": None,
            },
        )
        row["first"], row["last"] = min(row["first"], when(s)), max(row["last"], when(s))
        verb, result = s["verb"]["id"], s.get("result", {})
        cmi5 = SESSION in s["context"].get("extensions", {})
        ends_session = cmi5 and verb in (TERMINATED, ABANDONED)
        if "duration" in result and (ends_session or not cmi5):
            row["time"] += minutes(result["duration"])
        row["sessions"] += ends_session
        row["abandoned"] += ends_session and verb == ABANDONED
        if s["object"]["id"] != activity:
            continue
        score = result.get("score", {})
        scaled = score.get("scaled")
        if scaled is None and "raw" in score and "min" in score:
            scaled = (score["raw"] - score["min"]) / (score["max"] - score["min"])
        if verb == RATED:
            if row["rating"] is None or when(s) >= row["rating"]["at"]:
                row["rating"] = {"at": when(s), "scaled": scaled, **score, "response": result.get("response")}
            continue
        if verb in COMPLETION_VERBS or result.get("completion") is True:
            row["completed"] = min(filter(None, [row["completed"], when(s)]))
        row["passed"] |= verb == PASSED or result.get("success") is True
        row["failed"] |= verb == FAILED or result.get("success") is False
        if scaled is not None:
            row["score"] = scaled if row["score"] is None else max(row["score"], scaled)
    for n, row in out.items():
        context = latest[n]["context"]
        row["platform"], row["language"] = context.get("platform"), context.get("language")
    return out


def quartiles(values: list[float]) -> tuple[float, float, float]:
    """Linear interpolation between closest ranks, as PostgreSQL's percentile_cont."""
    if len(values) == 1:
        return values[0], values[0], values[0]
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[1], q[2]


def completion_figures(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What /analytics/completion says of these learners."""
    completed = [r for r in rows if r["completed"]]
    passed = [r for r in rows if r["passed"]]
    failed = [r for r in rows if r["failed"] and not r["passed"]]
    scores = sorted(r["score"] for r in rows if r["score"] is not None)
    times = [r["time"] for r in rows if r["time"] > 0]
    p25, median, p75 = quartiles(scores) if scores else (None, None, None)
    ttc = [(r["completed"] - r["first"]).total_seconds() for r in completed]
    return {
        "learners_started": len(rows),
        "learners_completed": len(completed),
        "completion_rate": len(completed) / len(rows) if rows else None,
        "learners_passed": len(passed),
        "learners_failed": len(failed),
        "pass_rate": len(passed) / (len(passed) + len(failed)) if passed or failed else None,
        "score": {
            "n": len(scores),
            "mean": statistics.fmean(scores) if scores else None,
            "median": median,
            "p25": p25,
            "p75": p75,
            "below_zero": sum(1 for x in scores if x < 0),
            "tenths": [sum(1 for x in scores if x >= 0 and min(int(x * 10), 9) == t) for t in range(10)],
        },
        "time_spent_seconds": {
            "total": sum(times),
            "mean": statistics.fmean(times) if times else None,
            "median": statistics.median(times) if times else None,
        },
        "median_time_to_complete_seconds": statistics.median(ttc) if ttc else None,
        "sessions": {
            "total": sum(r["sessions"] for r in rows),
            "abandoned": sum(r["abandoned"] for r in rows),
        },
    }


def inside(cohort: str) -> set[str]:
    """The cohort and every cohort below it."""
    found = {cohort}
    while True:
        more = {c for c, parent in TREE.items() if parent in found} - found
        if not more:
            return found
        found |= more


def members_at(cohort: str, at: datetime) -> set[int]:
    plan = AFTER if at >= T1 else BEFORE if at >= T0 else {}
    return {n for c in inside(cohort) for n in plan.get(c, [])}


def due_of(n: int, at: datetime) -> datetime | None:
    dues = [due for cohort, due in DUE.items() if n in members_at(cohort, at)]
    return min(dues) if dues else None


def stamp(at: datetime) -> str:
    """A timestamp as the LRS writes it."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def assignment_row(
    learners: set[int], progress: dict[int, dict[str, Any]], at: datetime, own_due: datetime | None
) -> dict[str, Any]:
    started = [progress[n] for n in learners if n in progress]
    done = {n for n in learners if n in progress and progress[n]["completed"]}
    overdue = {n for n in learners if n not in done and (d := due_of(n, at)) is not None and d < at}
    late = {n for n in done if (d := due_of(n, at)) is not None and progress[n]["completed"] > d}
    return {
        "due": stamp(own_due) if own_due else None,
        "assigned": len(learners),
        "not_started": len([n for n in learners if n not in progress]),
        "in_progress": len([n for n in learners if n in progress and n not in done]),
        "completed": len(done),
        "passed": len([r for r in started if r["passed"]]),
        "failed": len([r for r in started if r["failed"] and not r["passed"]]),
        "overdue": len(overdue),
        "completed_late": len(late),
        "completion_rate": len(done) / len(learners),
        "started": completion_figures(started),
    }


def approx(value: Any) -> Any:
    """Floats compared closely, anywhere in nested answers."""
    if isinstance(value, dict):
        return {k: approx(v) for k, v in value.items()}
    if isinstance(value, list):
        return [approx(v) for v in value]
    if isinstance(value, float):
        return pytest.approx(value, rel=1e-9, abs=1e-9)
    return value


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def town(server) -> dict[str, Any]:
    """A store with the cohorts, their history, assignments, a cost, and every statement."""
    name = new_store(server.database_url, "leaders", min_group_size=str(MIN_GROUP))
    creds = {
        role: make_credential(server.database_url, scopes, name, role).auth
        for role, scopes in (
            ("vendor", "statements/write"),
            ("hr", "cohorts"),
            ("analyst", "analytics/read"),
            ("leader", "analytics/learners"),
            ("admin", "admin"),
        )
    }
    statements = course_statements() + rating_statements() + cmi5_statements()
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:
        r = await c.post("/xapi/statements", json=statements, headers=V2, auth=creds["vendor"])
        assert r.status_code == 200, r.text
        for cohort, parent in TREE.items():
            r = await c.put(f"/analytics/cohorts/{cohort}", json={"parent": parent}, auth=creds["hr"])
            assert r.status_code == 201, r.text
        for at, plan in ((T0, BEFORE), (T1, AFTER)):
            for cohort, learners in plan.items():
                r = await c.put(
                    f"/analytics/cohorts/{cohort}/members",
                    params={"from": at.isoformat()},
                    json=[person(n) for n in learners],
                    auth=creds["hr"],
                )
                assert r.status_code == 200, r.text
        for cohort, due in DUE.items():
            r = await c.put(
                f"/analytics/cohorts/{cohort}/assignments",
                json={"activity": FIRE, "due": due.isoformat()},
                auth=creds["hr"],
            )
            assert r.status_code == 200, r.text
    await rollups_folded(server.database_url)
    return {"name": name, "server": server, "statements": statements, **creds}


async def ask(town: dict[str, Any], path: str, who: str = "analyst", **params: Any) -> dict[str, Any]:
    await rollups_folded(town["server"].database_url)
    async with httpx.AsyncClient(base_url=town["server"].url, auth=town[who], timeout=30) as c:
        r = await c.get("/analytics" + path, params=params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    assert body.pop("as_of")
    return body


def now_utc() -> datetime:
    return datetime.now(UTC)


# --- assignments ------------------------------------------------------------------------------


async def test_assignments_per_assigned_cohort(town):
    """Completion against the target group: the assigned, not only those who started;
    sub-cohorts roll up into the assigned parent; membership is today's."""
    body = await ask(town, "/assignments", activity=FIRE)
    now = now_utc()
    progress = reference(town["statements"], FIRE)
    want = [{"group": c, **assignment_row(members_at(c, now), progress, now, DUE[c])} for c in sorted(DUE)]
    assert body["groups"] == approx(want)
    assert body["suppressed_groups"] == 0
    helse = body["groups"][0]
    # The figures a leader reads first, spelled out: ten must take it, three have not begun.
    assert (helse["assigned"], helse["not_started"], helse["overdue"]) == (10, 2, 6)


@pytest.mark.parametrize(
    ("since", "until"),
    [
        (None, datetime(2026, 1, 20, tzinfo=UTC)),  # before the move: L5 in home care, L15 nowhere
        (datetime(2026, 1, 10, tzinfo=UTC), datetime(2026, 3, 3, tzinfo=UTC)),  # Helse overdue
    ],
)
async def test_assignments_use_the_membership_at_the_windows_end(town, since, until):
    params = {"until": until.isoformat()} | ({"since": since.isoformat()} if since else {})
    body = await ask(town, "/assignments", activity=FIRE, group_by="cohort", **params)
    progress = reference(town["statements"], FIRE, since, until)
    assigned = members_at("Helse", until) | members_at("Skole", until)
    want = []
    for cohort in sorted(TREE):
        learners = members_at(cohort, until) & assigned
        if learners:
            want.append({"group": cohort, **assignment_row(learners, progress, until, DUE.get(cohort))})
    assert body["groups"] == approx(want)
    hjemme = next(g for g in body["groups"] if g["group"] == "Hjemmetjeneste")
    assert hjemme["assigned"] == (6 if until < T1 else 5)


async def test_assignments_of_one_cohort_and_by_platform(town):
    now = now_utc()
    progress = reference(town["statements"], FIRE)
    body = await ask(town, "/assignments", activity=FIRE, cohort="Helse")
    assert body["groups"] == approx(
        [{"group": "Helse", **assignment_row(members_at("Helse", now), progress, now, DUE["Helse"])}]
    )

    body = await ask(town, "/assignments", activity=FIRE, group_by="platform")
    assigned = members_at("Kommune", now)
    by_platform: dict[Any, set[int]] = defaultdict(set)
    for n in assigned:
        by_platform[progress[n]["platform"] if n in progress else None].add(n)
    want = [
        {"group": g, **assignment_row(by_platform[g], progress, now, None)}
        for g in sorted(by_platform, key=lambda g: (g is None, str(g)))
    ]
    assert body["groups"] == approx(want)

    # Home care by platform: every group is below the minimum size, and is left out.
    body = await ask(town, "/assignments", activity=FIRE, cohort="Hjemmetjeneste", group_by="platform")
    assert body["groups"] == []
    assert body["suppressed_groups"] == 3


async def test_the_list_a_leader_acts_on(town):
    now = now_utc()
    progress = reference(town["statements"], FIRE)
    body = await ask(town, "/assignments/learners", who="leader", activity=FIRE)
    want = []
    for n in sorted(members_at("Kommune", now), key=ifi):
        p = progress.get(n)
        status = (
            "not_started"
            if p is None
            else "passed"
            if p["passed"]
            else "failed"
            if p["failed"]
            else "completed"
            if p["completed"]
            else "in_progress"
        )
        due = due_of(n, now)
        want.append(
            {
                "learner": ifi(n),
                "name": f"Ansatt {n}",
                "status": status,
                "due": stamp(due) if due else None,
                "overdue": due is not None and due < now and not (p and p["completed"]),
                "completed_at": stamp(p["completed"]) if p and p["completed"] else None,
                "score": p["score"] if p else None,
                "time_spent_seconds": p["time"] if p else 0.0,
                "last_seen": stamp(p["last"]) if p else None,
            }
        )
    assert body["learners"] == approx(want)
    late = [row["learner"] for row in body["learners"] if row["overdue"]]
    assert ifi(4) in late and ifi(0) not in late

    one_unit = await ask(town, "/assignments/learners", who="leader", activity=FIRE, cohort="Skole")
    assert {r["learner"] for r in one_unit["learners"]} == {ifi(n) for n in AFTER["Skole"]}
    async with httpx.AsyncClient(base_url=town["server"].url, auth=town["analyst"]) as c:
        r = await c.get("/analytics/assignments/learners", params={"activity": FIRE})
        assert r.status_code == 403
        r = await c.get(
            "/analytics/assignments/learners",
            params={"activity": FIRE, "group_by": "cohort"},
            auth=town["leader"],
        )
        assert r.status_code == 400 or "group_by" not in r.request.url.params  # no silent grouping


async def test_assignments_as_csv(town):
    async with httpx.AsyncClient(base_url=town["server"].url, auth=town["analyst"]) as c:
        r = await c.get("/analytics/assignments", params={"activity": FIRE, "format": "csv"})
    assert r.status_code == 200
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["group"] for row in rows] == ["Helse", "Skole"]
    assert rows[0]["assigned"] == "10"
    assert "started.learners_started" in rows[0]


# --- grouping every aggregate by cohort, platform, language -----------------------------------


async def test_completion_by_cohort_counts_sub_cohorts(town):
    now = now_utc()
    progress = reference(town["statements"], FIRE)
    body = await ask(town, "/completion", activity=FIRE, group_by="cohort")
    want = []
    for cohort in sorted(TREE):
        rows = [progress[n] for n in members_at(cohort, now) if n in progress]
        want.append({"group": cohort, **completion_figures(rows)})
    assert body["groups"] == approx(want)


async def test_completion_in_a_cohort_by_language(town):
    now = now_utc()
    progress = reference(town["statements"], FIRE)
    body = await ask(town, "/completion", activity=FIRE, cohort="Helse", group_by="language")
    groups: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for n in members_at("Helse", now):
        if n in progress:
            groups[progress[n]["language"]].append(progress[n])
    shown = {g: rows for g, rows in groups.items() if len(rows) >= MIN_GROUP}
    assert body["groups"] == approx([{"group": g, **completion_figures(shown[g])} for g in sorted(shown)])
    assert body["suppressed_groups"] == len(groups) - len(shown) == 2


async def test_completion_in_a_cohort_within_an_earlier_window(town):
    until = datetime(2026, 1, 20, tzinfo=UTC)
    progress = reference(town["statements"], FIRE, None, until)
    body = await ask(town, "/completion", activity=FIRE, cohort="Hjemmetjeneste", until=until.isoformat())
    rows = [progress[n] for n in BEFORE["Hjemmetjeneste"] if n in progress]
    assert body["groups"] == approx([{"group": None, **completion_figures(rows)}])


def periods_by_group(
    statements: list[dict[str, Any]], activity: str | None, group_of: Any, key: Any
) -> dict[tuple[Any, Any], dict[str, Any]]:
    """Learners and statements per (group, period): the reference for series and heatmaps."""
    cells: dict[tuple[Any, Any], dict[str, Any]] = defaultdict(lambda: {"learners": set(), "statements": 0})
    for s in statements:
        if activity is not None and not in_scope(s, activity):
            continue
        n = learner_of(s)
        for group in group_of(n):
            cell = cells[(group, key(when(s).astimezone(OSLO)))]
            cell["learners"].add(n)
            cell["statements"] += 1
    return cells


async def test_engagement_by_platform(town):
    progress = reference(town["statements"], FIRE)
    body = await ask(town, "/engagement", activity=FIRE, group_by="platform", tz="Europe/Oslo")
    cells = periods_by_group(
        town["statements"], FIRE, lambda n: [progress[n]["platform"]], lambda t: t.date().isoformat()
    )
    shown, suppressed = defaultdict(dict), 0
    for (group, period), cell in cells.items():
        if len(cell["learners"]) < MIN_GROUP:
            suppressed += 1
        else:
            shown[group][period] = (len(cell["learners"]), cell["statements"])
    assert [g["group"] for g in body["groups"]] == ["app", "web"]
    assert body["suppressed_groups"] == suppressed > 0
    for group in body["groups"]:
        got = {
            p["period"]: (p["active_learners"], p["statements"])
            for p in group["series"]
            if p["active_learners"]
        }
        assert got == shown[group["group"]]
        # Every group's series covers the same days (shown or left out), so they line up.
        first, last = min(k[1] for k in cells), max(k[1] for k in cells)
        days = (datetime.fromisoformat(last) - datetime.fromisoformat(first)).days + 1
        left_out = [
            k for k, cell in cells.items() if k[0] == group["group"] and len(cell["learners"]) < MIN_GROUP
        ]
        assert len(group["series"]) + len(left_out) == days


async def test_when_people_learn_by_cohort(town):
    now = now_utc()
    body = await ask(town, "/engagement/hours", group_by="cohort", tz="Europe/Oslo")

    def cohorts_of(n: int) -> list[Any]:
        found = [c for c in TREE if n in members_at(c, now)]
        return found or [None]

    cells = periods_by_group(town["statements"], None, cohorts_of, lambda t: (t.weekday(), t.hour))
    want_groups = sorted({g for g, _ in cells}, key=lambda g: (g is None, str(g)))
    assert [g["group"] for g in body["groups"]] == want_groups
    suppressed = sum(1 for cell in cells.values() if len(cell["learners"]) < MIN_GROUP)
    assert body["suppressed_groups"] == suppressed
    for group in body["groups"]:
        for c in group["cells"]:
            cell = cells.get((group["group"], (c["weekday"], c["hour"])))
            want = (len(cell["learners"]), cell["statements"]) if cell else (0, 0)
            assert (c["active_learners"], c["statements"]) == want
        assert (
            len(group["cells"])
            + sum(
                1
                for (g, _), cell in cells.items()
                if g == group["group"] and len(cell["learners"]) < MIN_GROUP
            )
            == 7 * 24
        )


async def test_activities_by_cohort(town):
    now = now_utc()
    body = await ask(town, "/activities", group_by="cohort", sort="activity", order="asc", limit=1000)
    want = []
    for activity in [FIRE, *MODULES]:
        progress = reference(town["statements"], activity)
        for cohort in sorted(TREE):
            rows = [progress[n] for n in members_at(cohort, now) if n in progress]
            if len(rows) >= MIN_GROUP:
                done = len([r for r in rows if r["completed"]])
                want.append((activity, cohort, len(rows), done))
    got = [
        (r["activity"], r["group"], r["learners_started"], r["learners_completed"])
        for r in body["activities"]
        if r["activity"] in (FIRE, *MODULES) and r["group"] is not None
    ]
    assert got == want


# --- learning elements ------------------------------------------------------------------------


async def test_elements_in_course_order_with_what_they_teach(town):
    body = await ask(town, "/elements", activity=FIRE)
    want = []
    for module in MODULES:
        rows = list(reference(town["statements"], module).values())
        done = [r for r in rows if r["completed"]]
        passed = [r for r in rows if r["passed"]]
        failed = [r for r in rows if r["failed"] and not r["passed"]]
        scores = [r["score"] for r in rows if r["score"] is not None]
        times = [r["time"] for r in rows if r["time"] > 0]
        ratings = [r["rating"]["scaled"] for r in rows if r["rating"]]
        want.append(
            {
                "activity": module,
                "name": None,
                "learners_reached": len(rows),
                "learners_completed": len(done),
                "completion_rate": len(done) / len(rows),
                "pass_rate": len(passed) / (len(passed) + len(failed)) if passed or failed else None,
                "score": {
                    "n": len(scores),
                    "mean": statistics.fmean(scores) if scores else None,
                    "median": statistics.median(scores) if scores else None,
                },
                "median_time_spent_seconds": statistics.median(times) if times else None,
                "self_assessment": {
                    "n": len(ratings),
                    "mean_scaled": statistics.fmean(ratings) if ratings else None,
                },
            }
        )
    assert body["elements"] == approx(want)
    assert body["elements"][2]["pass_rate"] == pytest.approx(5 / 6)

    grouped = await ask(town, "/elements", activity=FIRE, group_by="platform")
    assert [g["group"] for g in grouped["groups"]] == ["app", "web"]


async def test_dropoff_by_cohort(town):
    now = now_utc()
    body = await ask(town, "/dropoff", activity=FIRE, group_by="cohort")
    want, suppressed = [], 0
    for cohort in sorted(TREE):
        inside_now = members_at(cohort, now)
        steps = []
        for module in MODULES:
            reached = {n: r for n, r in reference(town["statements"], module).items() if n in inside_now}
            if len(reached) < MIN_GROUP:
                suppressed += bool(reached)
                continue
            done = len([r for r in reached.values() if r["completed"]])
            steps.append(
                {
                    "activity": module,
                    "name": None,
                    "learners_reached": len(reached),
                    "learners_completed": done,
                }
            )
        want.append({"group": cohort, "steps": steps})
    assert body["groups"] == [
        g for g in want if g["steps"] or g["group"] in {x["group"] for x in body["groups"]}
    ]
    assert body["suppressed_groups"] == suppressed


# --- self-assessment and feedback -------------------------------------------------------------


async def test_feedback_on_several_scales(town):
    progress = reference(town["statements"], FIRE)
    rated = [r["rating"] for r in progress.values() if r["rating"]]
    body = await ask(town, "/feedback", activity=FIRE)
    scales: dict[tuple[float, float], list[float]] = defaultdict(list)
    for r in rated:
        if "raw" in r:
            scales[(float(r["min"]), float(r["max"]))].append(float(r["raw"]))
    want = {
        "group": None,
        "n": len(rated),
        "mean_scaled": statistics.fmean(r["scaled"] for r in rated),
        "scales": [
            {
                "min": lo,
                "max": hi,
                "n": len(values),
                "mean_raw": statistics.fmean(values),
                "distribution": [{"raw": v, "learners": values.count(v)} for v in sorted(set(values))],
            }
            for (lo, hi), values in sorted(scales.items())
        ],
    }
    assert body["groups"] == approx([want])
    assert len(rated) == 6  # L9 rated twice: the later rating is theirs
    assert body["groups"][0]["scales"][1]["distribution"] == [
        {"raw": 4.0, "learners": 2},
        {"raw": 5.0, "learners": 1},
    ]

    by_platform = await ask(town, "/feedback", activity=FIRE, group_by="platform")
    assert [(g["group"], g["n"]) for g in by_platform["groups"]] == [("app", 3), ("web", 3)]


async def test_free_text_only_per_learner_with_its_scope(town):
    async with httpx.AsyncClient(base_url=town["server"].url, timeout=30) as c:
        aggregate = await c.get("/analytics/feedback", params={"activity": FIRE}, auth=town["analyst"])
        assert "Veldig nyttig" not in aggregate.text
        csv_text = await c.get(
            "/analytics/feedback", params={"activity": FIRE, "format": "csv"}, auth=town["analyst"]
        )
        assert "Veldig nyttig" not in csv_text.text and csv_text.text.startswith("group,n,mean_scaled")
        denied = await c.get("/analytics/feedback/learners", params={"activity": FIRE}, auth=town["analyst"])
        assert denied.status_code == 403
    body = await ask(town, "/feedback/learners", who="leader", activity=FIRE)
    responses = {r["learner"]: r["response"] for r in body["learners"]}
    assert responses[ifi(0)] == "Veldig nyttig" and responses[ifi(6)] == "Bra, men lang"
    assert responses[ifi(1)] is None
    assert {r["learner"]: r["raw"] for r in body["learners"]}[ifi(9)] == 4.0


# --- cmi5 -------------------------------------------------------------------------------------


async def test_cmi5_sessions_are_timed_once(town):
    """Time spent is the sessions' durations, not every statement's; waived and satisfied
    complete; the abandoned session is counted."""
    body = await ask(town, "/completion", activity=CMI5_AU)
    rows = list(reference(town["statements"], CMI5_AU).values())
    assert body["groups"] == approx([{"group": None, **completion_figures(rows)}])
    [au] = body["groups"]
    assert au["time_spent_seconds"]["total"] == (35 + 29 + 5) * 60  # not 75 + 41 + 5 minutes
    assert au["sessions"] == {"total": 5, "abandoned": 1}
    assert (au["learners_completed"], au["learners_passed"]) == (3, 1)

    course = await ask(town, "/completion", activity=CMI5_COURSE)
    [whole] = course["groups"]
    assert whole["learners_completed"] == 3  # satisfied
    assert whole["time_spent_seconds"]["total"] == (35 + 29 + 5) * 60


# --- cost per completion ----------------------------------------------------------------------


async def test_cost_per_completion(town):
    async with httpx.AsyncClient(base_url=town["server"].url, timeout=30) as c:
        for who, status in (("analyst", 403), ("hr", 200), ("admin", 200)):
            r = await c.put(
                "/analytics/costs",
                json={"activity": FIRE, "amount": 48000, "currency": "NOK"},
                auth=town[who],
            )
            assert r.status_code == status, r.text
        for bad, field in (
            ({"activity": FIRE, "amount": -1, "currency": "NOK"}, "amount"),
            ({"activity": FIRE, "amount": 1.005, "currency": "NOK"}, "amount"),
            ({"activity": FIRE, "amount": 10, "currency": "nok"}, "currency"),
            ({"activity": "brannvern", "amount": 10, "currency": "NOK"}, "activity"),
        ):
            r = await c.put("/analytics/costs", json=bad, auth=town["hr"])
            assert r.status_code == 400 and r.json()["message"].startswith(field), r.text
        listed = (await c.get("/analytics/costs", auth=town["hr"])).json()
        assert [(x["activity"], x["amount"], x["currency"]) for x in listed] == [(FIRE, 48000.0, "NOK")]
    try:
        progress = reference(town["statements"], FIRE)
        figures = completion_figures(list(progress.values()))
        hours = figures["time_spent_seconds"]["total"] / 3600
        want = {
            "amount": 48000.0,
            "currency": "NOK",
            "per_learner_started": round(48000 / figures["learners_started"], 2),
            "per_completion": round(48000 / figures["learners_completed"], 2),
            "per_learning_hour": round(48000 / hours, 2),
        }
        assert (await ask(town, "/completion", activity=FIRE, group_by="cohort"))["cost"] == approx(want)
        skole = [progress[n] for n in members_at("Skole", now_utc()) if n in progress]
        in_school = completion_figures(skole)
        body = await ask(town, "/assignments", activity=FIRE, cohort="Skole")
        assert body["cost"]["per_completion"] == round(48000 / in_school["learners_completed"], 2)
        assert body["cost"]["per_learner_started"] == round(48000 / in_school["learners_started"], 2)
        assert (await ask(town, "/completion", activity=CMI5_AU))["cost"] is None
    finally:
        async with httpx.AsyncClient(base_url=town["server"].url, timeout=30) as c:
            assert (
                await c.delete("/analytics/costs", params={"activity": FIRE}, auth=town["hr"])
            ).status_code == 204
            assert (
                await c.delete("/analytics/costs", params={"activity": FIRE}, auth=town["hr"])
            ).status_code == 404


# --- managing cohorts -------------------------------------------------------------------------


async def test_cohort_rules(town):
    async with httpx.AsyncClient(base_url=town["server"].url, auth=town["hr"], timeout=30) as c:
        r = await c.put("/analytics/cohorts/Ny", json={"parent": "Finnes ikke"})
        assert r.status_code == 400 and r.json()["message"].startswith("parent")
        r = await c.put("/analytics/cohorts/Kommune", json={"parent": "Skole"})
        assert r.status_code == 409 and "loop" in r.json()["message"]
        r = await c.delete("/analytics/cohorts/Helse")
        assert r.status_code == 409
        r = await c.put(
            "/analytics/cohorts/Skole/members",
            params={"from": (now_utc() + timedelta(days=1)).isoformat()},
            json=[person(1)],
        )
        assert r.status_code == 400 and r.json()["message"].startswith("from")
        # A misspelt parameter is refused, not ignored (the change would be dated now).
        r = await c.put("/analytics/cohorts/Skole/members", params={"fra": T1.isoformat()}, json=[person(1)])
        assert r.status_code == 400 and r.json()["message"].startswith("fra: not a parameter"), r.text
        r = await c.put("/analytics/cohorts/Skole/members", params={"from": T0.isoformat()}, json=[person(1)])
        assert r.status_code == 409 and r.json()["message"].startswith("from")
        r = await c.put("/analytics/cohorts/Skole/members", json=[person(1), {"mbox": "kari@example.no"}])
        assert r.status_code == 400 and r.json()["message"].startswith("members[1].mbox"), r.text
        # Nothing changed by the refused requests.
        r = await c.get("/analytics/cohorts/Skole/members")
        assert [m["learner"] for m in r.json()] == sorted(ifi(n) for n in AFTER["Skole"])
        r = await c.get(
            "/analytics/cohorts/Hjemmetjeneste/members", params={"at": (T0 + timedelta(days=3)).isoformat()}
        )
        assert [m["learner"] for m in r.json()] == sorted(ifi(n) for n in BEFORE["Hjemmetjeneste"])
        history = (
            await c.get("/analytics/cohorts/Hjemmetjeneste/members", params={"history": "true"})
        ).json()
        moved = [m for m in history if m["learner"] == ifi(5)]
        assert moved == [
            {"learner": ifi(5), "name": "Ansatt 5", "valid_from": stamp(T0), "valid_to": stamp(T1)}
        ]
        listed = {x["name"]: x for x in (await c.get("/analytics/cohorts")).json()}
        assert listed["Helse"]["parent"] == "Kommune" and listed["Helse"]["members"] == 0
        assert listed["Skole"]["members"] == 6 and listed["Skole"]["assignments"] == 1
    async with httpx.AsyncClient(base_url=town["server"].url, auth=town["analyst"]) as c:
        assert (await c.get("/analytics/cohorts")).status_code == 403
        r = await c.get("/analytics/completion", params={"activity": FIRE, "cohort": "Finnes ikke"})
        assert r.status_code == 400 and r.json()["message"].startswith("cohort")
        r = await c.get("/analytics/completion", params={"activity": FIRE, "group_by": "kommune"})
        assert r.status_code == 400 and r.json()["message"].startswith("group_by")


async def test_members_from_csv_and_a_nightly_sync_that_changes_nothing(town, server):
    name = f"Vikarer {uuid.uuid4().hex[:6]}"
    async with httpx.AsyncClient(base_url=server.url, auth=town["hr"], timeout=30) as c:
        assert (await c.put(f"/analytics/cohorts/{name}", json={"parent": "Helse"})).status_code == 201
        sheet = (
            "account_homepage,account_name,name\n"
            + "".join(f"https://hr.kommune.example.no,a{n},Ansatt {n}\n" for n in (30, 31, 32))
            + "mbox,\nmailto:vikar@example.no,\n"
        )
        r = await c.put(
            f"/analytics/cohorts/{name}/members", content=sheet.encode(), headers={"Content-Type": "text/csv"}
        )
        assert r.status_code == 400 and "unknown CSV column" not in r.text  # mixed headers are one header row
        sheet = (
            "account_homepage,account_name,name,mbox\n"
            + "".join(f"https://hr.kommune.example.no,a{n},Ansatt {n},\n" for n in (30, 31, 32))
            + ",,Vikar,mailto:vikar@example.no\n"
        )
        r = await c.put(
            f"/analytics/cohorts/{name}/members", content=sheet.encode(), headers={"Content-Type": "text/csv"}
        )
        assert r.status_code == 200, r.text
        assert (r.json()["joined"], r.json()["left"], r.json()["members"]) == (4, 0, 4)
        again = await c.put(
            f"/analytics/cohorts/{name}/members", content=sheet.encode(), headers={"Content-Type": "text/csv"}
        )
        assert (again.json()["joined"], again.json()["left"]) == (0, 0)
        history = (await c.get(f"/analytics/cohorts/{name}/members", params={"history": "true"})).json()
        assert len(history) == 4  # the second sync wrote nothing
        assert {m["learner"] for m in history} == {ifi(30), ifi(31), ifi(32), "mbox:mailto:vikar@example.no"}
        r = await c.put(
            f"/analytics/cohorts/{name}/members",
            content=b"epost\nkari@example.no\n",
            headers={"Content-Type": "text/csv"},
        )
        assert r.status_code == 400 and "epost" in r.json()["message"]
        r = await c.put(f"/analytics/cohorts/{name}/members", json=[person(30)])
        assert (r.json()["joined"], r.json()["left"]) == (0, 3)
        assert (await c.delete(f"/analytics/cohorts/{name}")).status_code == 204
        assert (await c.get(f"/analytics/cohorts/{name}")).status_code == 404
    async with httpx.AsyncClient(base_url=server.url, auth=town["admin"], timeout=30) as c:
        audit = (await c.get("/admin/audit", params={"store": town["name"], "limit": 1000})).json()
    actions = [(e["action"], e["target"]) for e in audit if e["target"] == name]
    assert actions[::-1][:3] == [("cohort.create", name), ("cohort.members", name), ("cohort.members", name)]
    assert actions[0] == ("cohort.delete", name)
