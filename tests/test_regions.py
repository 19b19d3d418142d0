"""Regions over HTTP: three stores, two in a region and one not. The region's figures are the
members' own figures added up; the third store never shows; consent and leaving take effect
at once; suppression holds across stores, complementary suppression included; a region
credential reads its region's aggregates and nothing else."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from lrs.analytics.metrics import withheld, withheld_by_largest
from tests.factories import COMPLETED, activity, agent, statement
from tests.harness import Server, make_credential, new_store, rollups_folded, run_cli

V2 = {"X-Experience-API-Version": "2.0.0"}
ATTEMPTED = "http://adlnet.gov/expapi/verbs/attempted"


def learners(course: str, completed: int, started_only: int, platform: str) -> list[dict[str, Any]]:
    """Statements of ``completed`` learners who completed and ``started_only`` who only
    attempted, each on ``platform``."""
    out = []
    for n in range(completed + started_only):
        verb = COMPLETED if n < completed else ATTEMPTED
        out.append(
            statement(
                actor=agent(),
                verb=verb,
                obj={"objectType": "Activity", "id": course},
                result={"score": {"scaled": (n % 10) / 10}, "duration": f"PT{10 + n}M"},
                context={"platform": platform},
            )
        )
    return out


async def fill(server: Server, store: str, body: list[dict[str, Any]]) -> None:
    writer = make_credential(server.database_url, "statements/write", store)
    async with httpx.AsyncClient(base_url=server.xapi, auth=writer.auth, headers=V2, timeout=30) as c:
        r = await c.post("/statements", json=body)
        assert r.status_code == 200, r.text


@pytest.fixture
async def region(server: Server) -> dict[str, Any]:
    course = activity()["id"]
    small = f"https://kurs.example.no/smaa/{uuid.uuid4().hex[:6]}"
    names = {
        "bergen": new_store(server.database_url, "bergen", min_group_size="1", region_sharing="true"),
        "voss": new_store(server.database_url, "voss", min_group_size="1", region_sharing="true"),
        "oslo": new_store(server.database_url, "oslo", min_group_size="1", region_sharing="true"),
    }
    run_cli(
        server.database_url, "store", "settings", names["bergen"], "--set", 'region_display_name="Bergen"'
    )
    await fill(server, names["bergen"], learners(course, 6, 4, "app") + learners(small, 3, 0, "app"))
    await fill(server, names["voss"], learners(course, 3, 3, "web") + learners(small, 1, 0, "web"))
    await fill(server, names["oslo"], learners(course, 40, 0, "web") + learners(small, 2, 0, "web"))
    await rollups_folded(server.database_url)
    name = f"vest-{uuid.uuid4().hex[:6]}"
    admin = make_credential(server.database_url, "admin")
    async with httpx.AsyncClient(base_url=server.url, auth=admin.auth) as c:
        assert (await c.post("/admin/regions", json={"name": name})).status_code == 201
        for store in ("bergen", "voss"):
            r = await c.put(f"/admin/regions/{name}/stores/{names[store]}")
            assert r.status_code == 200, r.text
        made = (await c.post(f"/admin/regions/{name}/credentials", json={"label": "fylket"})).json()
    assert made["scopes"] == ["region/analytics"]
    return {
        "name": name,
        "stores": names,
        "course": course,
        "small": small,
        "auth": (made["key"], made["secret"]),
        "admin": admin,
    }


async def ask(server: Server, auth: Any, path: str, **params: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url, auth=auth, timeout=30) as c:
        return await c.get(path, params=params)


async def own(server: Server, store: str, path: str, **params: Any) -> dict[str, Any]:
    analyst = make_credential(server.database_url, "analytics/read", store)
    r = await ask(server, analyst.auth, "/analytics" + path, **params)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def test_the_region_adds_up_its_members_and_nothing_else(server, region):
    r = await ask(
        server, region["auth"], f"/regions/{region['name']}/analytics/completion", activity=region["course"]
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["stores"], body["min_group_size"]) == (2, 5)
    total = body["groups"][0]
    members = [
        (await own(server, region["stores"][s], "/completion", activity=region["course"]))["groups"][0]
        for s in ("bergen", "voss")
    ]
    for figure in ("learners_started", "learners_completed", "learners_passed"):
        assert total[figure] == sum(m[figure] for m in members), figure
    assert total["learners_started"] == 16 and total["learners_completed"] == 9  # Oslo's 40 are not here
    assert total["time_spent_seconds"]["total"] == sum(m["time_spent_seconds"]["total"] for m in members)
    assert total["score"]["tenths"] == [
        sum(t) for t in zip(*(m["score"]["tenths"] for m in members), strict=True)
    ]
    # Side by side: Bergen by the name it allows, Voss (no display name) as a municipality.
    side = (
        await ask(
            server,
            region["auth"],
            f"/regions/{region['name']}/analytics/completion",
            activity=region["course"],
            group_by="store",
        )
    ).json()
    assert {g["group"]: g["learners_started"] for g in side["groups"]} == {"Bergen": 10, "municipality 2": 6}
    assert region["stores"]["voss"] not in json.dumps(side)
    by_platform = (
        await ask(
            server,
            region["auth"],
            f"/regions/{region['name']}/analytics/completion",
            activity=region["course"],
            group_by="platform",
        )
    ).json()
    assert {g["group"]: g["learners_started"] for g in by_platform["groups"]} == {"app": 10, "web": 6}
    listed = (await ask(server, region["auth"], f"/regions/{region['name']}/analytics/activities")).json()
    assert {a["activity"]: a["learners_started"] for a in listed["activities"]} == {region["course"]: 16}
    # The small course has 3 + 1 learners: fewer than 5, suppressed and counted.
    assert listed["suppressed_groups"] == 1
    csv = await ask(
        server,
        region["auth"],
        f"/regions/{region['name']}/analytics/completion",
        activity=region["course"],
        format="csv",
    )
    assert csv.headers["content-type"].startswith("text/csv") and "16" in csv.text


async def test_suppression_holds_across_stores(server, region):
    path = f"/regions/{region['name']}/analytics/completion"
    small = (await ask(server, region["auth"], path, activity=region["small"])).json()
    assert small["groups"] == [] and small["suppressed_groups"] == 1  # 3 + 1
    # One more learner in Voss: 3 + 2 = 5 reaches the minimum, but Bergen, knowing its own 3,
    # would learn Voss's 2 by subtraction (and Voss Bergen's 3): complementary suppression.
    await fill(server, region["stores"]["voss"], learners(region["small"], 1, 0, "web"))
    await rollups_folded(server.database_url)
    five = (await ask(server, region["auth"], path, activity=region["small"])).json()
    assert five["groups"] == [] and five["suppressed_groups"] == 1
    # Grown to 3 + 6 = 9 (9 - 3 = 6 and 9 - 6 = 3): Bergen could still subtract its way to
    # Voss's 6 (shown anyway), but Voss subtracting would leave Bergen's 3: still withheld.
    await fill(server, region["stores"]["voss"], learners(region["small"], 4, 0, "web"))
    await rollups_folded(server.database_url)
    nine = (await ask(server, region["auth"], path, activity=region["small"])).json()
    assert nine["groups"] == [] and nine["suppressed_groups"] == 1
    # Bergen grows to 5: 5 + 6 = 11, each remainder at least 5: shown.
    await fill(server, region["stores"]["bergen"], learners(region["small"], 2, 0, "app"))
    await rollups_folded(server.database_url)
    shown = (await ask(server, region["auth"], path, activity=region["small"])).json()
    assert shown["suppressed_groups"] == 0 and shown["groups"][0]["learners_started"] == 11


async def test_a_member_leaving_or_withdrawing_consent_disappears_at_once(server, region):
    path = f"/regions/{region['name']}/analytics/completion"

    async def started() -> int:
        body = (await ask(server, region["auth"], path, activity=region["course"], group_by="store")).json()
        return sum(g["learners_started"] for g in body["groups"])

    assert await started() == 16
    run_cli(
        server.database_url, "store", "settings", region["stores"]["voss"], "--set", "region_sharing=false"
    )
    assert await started() == 10
    run_cli(
        server.database_url, "store", "settings", region["stores"]["voss"], "--set", "region_sharing=true"
    )
    assert await started() == 16
    out = run_cli(server.database_url, "region", "leave", region["name"], region["stores"]["voss"], "--json")
    assert json.loads(out.stdout)["members"] == region["stores"]["bergen"]
    assert await started() == 10
    # Joining needs the store's own consent.
    run_cli(
        server.database_url, "store", "settings", region["stores"]["oslo"], "--set", "region_sharing=false"
    )
    refused = run_cli(
        server.database_url, "region", "join", region["name"], region["stores"]["oslo"], check=False
    )
    assert refused.returncode != 0 and "region_sharing" in refused.stderr
    audit = (await ask(server, region["admin"].auth, "/admin/audit", store=region["stores"]["voss"])).json()
    assert [e["action"] for e in audit][:3] == ["region.leave", "store.settings", "store.settings"]


async def test_a_region_credential_reads_its_region_only(server, region):
    key_auth = region["auth"]
    other = f"annen-{uuid.uuid4().hex[:6]}"
    run_cli(server.database_url, "region", "create", other)
    r = await ask(server, key_auth, f"/regions/{other}/analytics/completion", activity=region["course"])
    assert r.status_code == 403
    r = await ask(
        server,
        key_auth,
        f"/regions/{region['name']}/analytics/completion",
        activity=region["course"],
        group_by="cohort",
    )
    assert r.status_code == 400 and "group_by" in r.json()["message"]
    r = await ask(
        server,
        key_auth,
        f"/regions/{region['name']}/analytics/completion",
        activity=region["course"],
        cohort="x",
    )
    assert r.status_code == 400 and "cohort" in r.json()["message"]
    # Analysts of a member store have no way into the region either.
    analyst = make_credential(server.database_url, "analytics/read", region["stores"]["bergen"])
    r = await ask(
        server, analyst.auth, f"/regions/{region['name']}/analytics/completion", activity=region["course"]
    )
    assert r.status_code == 403
    # A region credential cannot be made as a store credential.
    refused = run_cli(
        server.database_url, "credentials", "create", "--scopes", "region/analytics", check=False
    )
    assert refused.returncode != 0 and "region" in refused.stderr
    # Deleting the region ends its credentials.
    run_cli(server.database_url, "region", "delete", region["name"], "--yes")
    r = await ask(
        server, key_auth, f"/regions/{region['name']}/analytics/completion", activity=region["course"]
    )
    assert r.status_code in (401, 403)


def module_statements(course: str, modules: int, learners_n: int, hour: int) -> list[dict[str, Any]]:
    """Each of ``learners_n`` learners completes the first module, every other one the rest
    too, at ``hour`` (UTC) on 2026-11-02."""
    out = []
    for n in range(learners_n):
        actor = agent()
        for m in range(modules if n % 2 == 0 else 1):
            out.append(
                statement(
                    actor=actor,
                    verb=COMPLETED,
                    obj={"objectType": "Activity", "id": f"{course}/modul/{m}"},
                    context={"contextActivities": {"parent": [{"id": course}]}},
                    timestamp=f"2026-11-02T{hour:02d}:{10 + m:02d}:00Z",
                )
            )
    return out


async def test_engagement_hours_and_elements_add_up_across_members(server, region):
    course = f"https://kurs.example.no/moduler/{uuid.uuid4().hex[:6]}"
    await fill(server, region["stores"]["bergen"], module_statements(course, 3, 10, hour=9))
    await fill(server, region["stores"]["voss"], module_statements(course, 3, 10, hour=13))
    await rollups_folded(server.database_url)
    base = f"/regions/{region['name']}/analytics"

    async def both(path: str, **params: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        r = await ask(server, region["auth"], base + path, **params)
        assert r.status_code == 200, r.text
        mine = [await own(server, region["stores"][s], path, **params) for s in ("bergen", "voss")]
        return r.json(), mine

    elements, mine = await both("/elements", activity=course)
    reached = {e["activity"]: e["learners_reached"] for e in elements["elements"]}
    assert reached == {
        e["activity"]: e["learners_reached"] + f["learners_reached"]
        for e, f in zip(mine[0]["elements"], mine[1]["elements"], strict=True)
    }
    assert reached[f"{course}/modul/0"] == 20 and reached[f"{course}/modul/2"] == 10
    dropoff, _ = await both("/dropoff", activity=course)
    assert [s["learners_reached"] for s in dropoff["steps"]] == [20, 10, 10]
    hours, mine = await both("/engagement/hours", activity=course, tz="UTC")
    active = {(c["weekday"], c["hour"]): c["active_learners"] for c in hours["cells"] if c["active_learners"]}
    assert active == {(0, 9): 10, (0, 13): 10}
    per_day, mine = await both(
        "/engagement", activity=course, tz="UTC", since="2026-11-02T00:00:00Z", until="2026-11-03T00:00:00Z"
    )
    day = per_day["series"]
    assert len(day) == 1 and (day[0]["active_learners"], day[0]["statements"]) == (20, 40)
    for figure in ("active_learners", "statements", "completions", "time_spent_seconds"):
        assert day[0][figure] == sum(m["series"][0][figure] for m in mine), figure


async def test_small_cells_across_members_are_withheld_not_zero(server, region):
    course = f"https://kurs.example.no/smaa-timer/{uuid.uuid4().hex[:6]}"
    # 6 learners at 09 in Bergen, and 6 + 2 at 13 (Bergen's 6, Voss's 2): the 13 cell reaches
    # 8, but Bergen could subtract its 6 and learn Voss's 2, so it is withheld.
    await fill(server, region["stores"]["bergen"], module_statements(course, 1, 6, hour=9))
    await fill(server, region["stores"]["bergen"], module_statements(course, 1, 6, hour=13))
    await fill(server, region["stores"]["voss"], module_statements(course, 1, 2, hour=13))
    await rollups_folded(server.database_url)
    r = await ask(
        server,
        region["auth"],
        f"/regions/{region['name']}/analytics/engagement/hours",
        activity=course,
        tz="UTC",
    )
    cells = {(c["weekday"], c["hour"]): c["active_learners"] for c in r.json()["cells"]}
    assert cells[(0, 9)] == 6
    assert (0, 13) not in cells and r.json()["suppressed_groups"] == 1


async def test_store_wide_hours_and_weeks_add_up_and_withhold_what_a_member_could_subtract(server, region):
    """Store-wide and over all time, a region reads its members' kept cells and periods (in
    the stores' own zone), added up in SQL: each shown figure is the members' own figures
    added up, and each figure that a member could subtract its way into is withheld."""
    course = f"https://kurs.example.no/tidlig/{uuid.uuid4().hex[:6]}"
    # Beside the fixture's statements (this week, both members): Monday 2026-11-02 at 05 UTC,
    # 6 learners in Bergen and 2 in Voss: 8 in all, but Bergen could subtract its 6.
    await fill(server, region["stores"]["bergen"], module_statements(course, 1, 6, hour=5))
    await fill(server, region["stores"]["voss"], module_statements(course, 1, 2, hour=5))
    await rollups_folded(server.database_url)
    base = f"/regions/{region['name']}/analytics"
    members = [region["stores"][s] for s in ("bergen", "voss")]
    for path, params, key, at in (
        ("/engagement/hours", {}, "cells", lambda row: (row["weekday"], row["hour"])),
        ("/engagement", {"interval": "week"}, "series", lambda row: row["period"]),
        # From 04 UTC on Monday: that day (in the stores' zone) is cut, the later ones whole.
        (
            "/engagement",
            {"interval": "day", "since": "2026-11-02T04:00:00Z"},
            "series",
            lambda row: row["period"],
        ),
    ):
        r = await ask(server, region["auth"], base + path, **params)
        assert r.status_code == 200, r.text
        shown = {at(row): row for row in r.json()[key] if row["active_learners"]}
        shares: dict[Any, dict[str, list[int]]] = {}
        for store in members:
            for row in (await own(server, store, path, **params))[key]:
                if row["active_learners"]:
                    mine = shares.setdefault(at(row), {})
                    mine[store] = [row["active_learners"], row["statements"]]
        withheld_here = {
            k
            for k, per in shares.items()
            if withheld(sum(a for a, _ in per.values()), {s: a for s, (a, _) in enumerate(per.values())}, 5)
        }
        assert withheld_here and set(shares) - withheld_here, (path, shares)  # both kinds occur
        assert set(shown) == set(shares) - withheld_here, path
        assert r.json()["suppressed_groups"] == len(withheld_here), path
        for k, row in shown.items():
            assert [row["active_learners"], row["statements"]] == [
                sum(v[0] for v in shares[k].values()),
                sum(v[1] for v in shares[k].values()),
            ], (path, k)


async def test_a_region_without_members_answers_with_no_figures(server):
    name = f"tom-{uuid.uuid4().hex[:6]}"
    admin = make_credential(server.database_url, "admin")
    async with httpx.AsyncClient(base_url=server.url, auth=admin.auth) as c:
        assert (await c.post("/admin/regions", json={"name": name})).status_code == 201
        made = (await c.post(f"/admin/regions/{name}/credentials", json={"label": "tom"})).json()
    auth = (made["key"], made["secret"])
    course = "https://kurs.example.no/ingen"
    for path, params, key in (
        ("/engagement/hours", {}, "cells"),
        ("/engagement/hours", {"activity": course}, "cells"),
        ("/engagement", {"interval": "week"}, "series"),
        ("/engagement", {"interval": "week", "activity": course}, "series"),
    ):
        r = await ask(server, auth, f"/regions/{name}/analytics{path}", **params)
        assert r.status_code == 200, (path, params, r.text)
        assert not any(row["active_learners"] for row in r.json()[key]), (path, params)
        assert r.json()["suppressed_groups"] == 0


async def test_each_route_compares_members_side_by_side(server, region):
    course = f"https://kurs.example.no/side/{uuid.uuid4().hex[:6]}"
    # Every step of every store reaches the region's minimum (5), so each shows as in its store.
    await fill(server, region["stores"]["bergen"], module_statements(course, 2, 10, hour=9))
    await fill(server, region["stores"]["voss"], module_statements(course, 2, 12, hour=13))
    await rollups_folded(server.database_url)
    base = f"/regions/{region['name']}/analytics"
    for path, params, key, figure in (
        ("/elements", {"activity": course}, "elements", "learners_reached"),
        ("/dropoff", {"activity": course}, "steps", "learners_reached"),
        ("/engagement/hours", {"activity": course, "tz": "UTC"}, "cells", "active_learners"),
        (
            "/engagement",
            {
                "activity": course,
                "tz": "UTC",
                "since": "2026-11-02T00:00:00Z",
                "until": "2026-11-03T00:00:00Z",
            },
            "series",
            "active_learners",
        ),
    ):
        r = await ask(server, region["auth"], base + path, group_by="store", **params)
        assert r.status_code == 200, r.text
        groups = {g["group"]: g[key] for g in r.json()["groups"]}
        assert set(groups) == {"Bergen", "municipality 2"}
        for shown, store in (("Bergen", "bergen"), ("municipality 2", "voss")):
            mine = (await own(server, region["stores"][store], path, **params))[key]
            assert [row[figure] for row in groups[shown]] == [row[figure] for row in mine], (path, shown)
    r = await ask(server, region["auth"], base + "/elements", activity=course, group_by="platform")
    assert r.status_code == 400 and "group_by" in r.json()["message"]


@given(
    shares=st.lists(st.integers(min_value=1, max_value=40), max_size=8),
    min_group=st.integers(min_value=1, max_value=12),
)
def test_suppression_from_the_largest_share_is_suppression_from_every_share(shares, min_group):
    """The region's activity list decides from two numbers what the other answers decide
    from every member's share."""
    per_store = dict(enumerate(shares))
    total = sum(shares)
    assert withheld_by_largest(total, len(shares), max(shares, default=0), min_group) == withheld(
        total, per_store, min_group
    )
