"""What a region asks: aggregates over its member stores, never anything per person.

Every route needs a region credential (scope ``region/analytics``) of the region named in
the path. Figures are read from each member store's rollups (one index range per store)
and suppressed as within a store, with the region's minimum group size (never below any
member's own) and complementary suppression across members.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncConnection

from lrs.analytics import metrics
from lrs.analytics import reads as analytics_reads
from lrs.analytics.api import (
    Activity,
    Format,
    OptionalActivity,
    Since,
    Tz,
    Until,
    names_in,
    respond,
    window_of,
)
from lrs.analytics.reads import EVERYONE, Among, Period, Reach, Window
from lrs.api.auth import CallerDep
from lrs.api.params import known_parameters
from lrs.api.services import Services, ServicesDep
from lrs.ops import regions
from lrs.ops.caller import Caller
from lrs.ops.regions import Sharing
from lrs.xapi.errors import BadRequest
from lrs.xapi.validate import check_iri

router = APIRouter(prefix="/regions", tags=["Regions"], dependencies=[Depends(known_parameters)])
_ERRORS: dict[int | str, dict[str, str]] = {
    400: {"description": "A parameter is malformed"},
    401: {"description": "Missing or wrong credentials"},
    403: {"description": "Not a credential of this region"},
}


def _about(region: Sharing) -> dict[str, Any]:
    return {"region": region.region, "stores": len(region.store_ids), "min_group_size": region.min_group}


async def _names_of(
    conn: AsyncConnection, region: Sharing, activities: set[str]
) -> dict[str, dict[str, str]]:
    """The activities' names as the first member store that names each gives them (members
    that share a course usually name it alike, so most answers need one store)."""
    named: dict[str, dict[str, str]] = {}
    for store_id in region.store_ids:
        wanted = activities - named.keys()
        if not wanted:
            break
        named.update(await analytics_reads.activity_names(conn, store_id, wanted))
    return named


ByStore = Annotated[
    Literal["store"] | None,
    Query(description="`store`: each member store's own figures side by side, under the name it allows"),
]


def _by_store(group_by: str | None) -> bool:
    return group_by == "store"


def _group_by(group_by: str | None) -> str | None:
    """A region groups by member store, or by a value statements give; cohorts are each
    store's own and are not compared across stores."""
    if group_by == "store":
        return group_by
    if group_by == "cohort":
        raise BadRequest("group_by: cohorts are one store's; a region groups by store or a statement value")
    metrics.check_group_by(group_by)
    return group_by


@router.get("/{name}/analytics/completion", responses=_ERRORS, summary="Completion across the region")
async def completion(
    name: str,
    request: Request,
    app: ServicesDep,
    who: CallerDep,
    activity: Activity,
    since: Since = None,
    until: Until = None,
    fmt: Format = None,
    group_by: Annotated[
        str | None,
        Query(
            description="`store` compares the member stores side by side (each under the name it "
            "allows, else as 'municipality N'); or platform, language, team, authority, homepage, "
            "extension:<IRI> (what a learner's latest statement on the activity says)"
        ),
    ] = None,
) -> Response:
    check_iri(activity, "activity")
    grouping = _group_by(group_by)
    window = window_of(since, until)

    async def work(conn: AsyncConnection) -> dict[str, Any]:
        region = await regions.sharing(conn, who, name)
        shared = await analytics_reads.region_completion(conn, region.store_ids, activity, window, grouping)
        body = metrics.region_completion(activity, shared, grouping, region.min_group, region.shown_as)
        return {**_about(region), **body}

    body = await app.db.read(work)
    return respond(request, body, fmt, body["groups"], None)


@router.get("/{name}/analytics/activities", responses=_ERRORS, summary="Activities across the region")
async def activities(
    name: str,
    request: Request,
    app: ServicesDep,
    who: CallerDep,
    fmt: Format = None,
    sort: Annotated[
        Literal[
            "learners_started", "learners_completed", "completion_rate", "time_spent_seconds", "activity"
        ],
        Query(),
    ] = "learners_started",
    order: Annotated[Literal["asc", "desc"], Query()] = "desc",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    async def work(conn: AsyncConnection) -> tuple[dict[str, Any], dict[str, dict[str, str]]]:
        region = await regions.sharing(conn, who, name)
        summaries = await analytics_reads.region_activities(conn, region.store_ids)
        body = metrics.region_activities(summaries, sort, order == "desc", limit, offset, region.min_group)
        named = await _names_of(conn, region, {row["activity"] for row in body["activities"]})
        body = {**_about(region), **body}
        return body, named

    body, named = await app.db.read(work)
    names = names_in(request, named)
    for row in body["activities"]:
        row["name"] = names.get(row["activity"])
    return respond(request, body, fmt, body["activities"], None)


def _zone(app: Services, tz: str | None) -> ZoneInfo:
    name = tz or app.settings.default_timezone
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadRequest(f"tz: {name!r} is not an IANA time zone name") from None


@router.get("/{name}/analytics/engagement", responses=_ERRORS, summary="Activity over time across the region")
async def engagement(
    name: str,
    request: Request,
    app: ServicesDep,
    who: CallerDep,
    activity: OptionalActivity = None,
    interval: Annotated[Literal["day", "week", "month"], Query()] = "day",
    since: Since = None,
    until: Until = None,
    tz: Tz = None,
    fmt: Format = None,
    group_by: ByStore = None,
) -> Response:
    if activity is not None:
        check_iri(activity, "activity")
    window, zone = window_of(since, until), _zone(app, tz)
    by = _by_store(group_by)

    async def work(conn: AsyncConnection) -> dict[str, Any]:
        region = await regions.sharing(conn, who, name)
        by_store = await analytics_reads.region_engagement(
            conn, region.store_ids, activity, interval, zone.key, window
        )
        since, until, least = window.since, window.until, region.min_group
        if by:
            rows = [replace(p, group=region.shown_as[s]) for s, found in by_store.items() for p in found]
            starts = [p.start for p in rows]

            def series(found: list[Period]) -> dict[str, Any]:
                return metrics.engagement(found, interval, zone, since, until, least, starts)

            body = metrics.by_group(rows, lambda p: p.group, series, "series")
            return {**_about(region), "interval": interval, "tz": zone.key, **body}
        merged, hidden = metrics.merged_periods(by_store, least)
        total = metrics.engagement(merged, interval, zone, since, until, least, hidden=hidden)
        return {**_about(region), **total}

    body = await app.db.read(work)
    rows = metrics.group_rows(body, "series") if by else body["series"]
    return respond(request, body, fmt, rows, None)


@router.get("/{name}/analytics/engagement/hours", responses=_ERRORS, summary="When the region learns")
async def engagement_hours(
    name: str,
    request: Request,
    app: ServicesDep,
    who: CallerDep,
    activity: OptionalActivity = None,
    since: Since = None,
    until: Until = None,
    tz: Tz = None,
    fmt: Format = None,
    group_by: ByStore = None,
) -> Response:
    if activity is not None:
        check_iri(activity, "activity")
    window, zone = window_of(since, until), _zone(app, tz)
    by = _by_store(group_by)

    async def work(conn: AsyncConnection) -> dict[str, Any]:
        region = await regions.sharing(conn, who, name)
        by_store = await analytics_reads.region_hours(conn, region.store_ids, activity, zone.key, window)
        least = region.min_group
        if by:
            cells = [replace(c, group=region.shown_as[s]) for s, found in by_store.items() for c in found]
            body = metrics.by_group(
                cells, lambda c: c.group, lambda found: metrics.hours(found, zone, least), "cells"
            )
            return {**_about(region), "tz": zone.key, **body}
        merged, hidden = metrics.merged_cells(by_store, least)
        return {**_about(region), **metrics.hours(merged, zone, least, hidden)}

    body = await app.db.read(work)
    rows = metrics.group_rows(body, "cells") if by else body["cells"]
    return respond(request, body, fmt, rows, None)


async def _steps(
    name: str, request: Request, app: Services, who: Caller, activity: str, window: Window, by: bool
) -> tuple[Sharing, list[tuple[Reach, str | None]], int]:
    """The course's steps across the region (with ``by``: per member store, each store's
    own figures, grouped under the name the region shows it by)."""

    async def work(conn: AsyncConnection) -> tuple[Sharing, list[Reach], dict[str, dict[str, str]]]:
        region = await regions.sharing(conn, who, name)
        kids = await analytics_reads.child_activities(conn, region.store_ids, activity)
        among = Among("store") if by else EVERYONE
        steps = await analytics_reads.reach(conn, region.store_ids, activity, kids, window, among)
        return region, steps, await _names_of(conn, region, set(kids))

    region, steps, named = await app.db.read(work)
    names = names_in(request, named)
    if by:
        shown = [(replace(s, group=region.shown_as[int(s.group)]), names.get(s.activity)) for s in steps]
        return region, shown, 0
    kept, withheld = metrics.shared_steps([(s, names.get(s.activity)) for s in steps], region.min_group)
    return region, kept, withheld


def _per_step(
    region: Sharing,
    activity: str,
    steps: list[tuple[Reach, str | None]],
    withheld: int,
    shape: Callable[..., dict[str, Any]],
    key: str,
    by: bool,
) -> dict[str, Any]:
    if by:
        body = metrics.by_group(
            steps, lambda s: s[0].group, lambda found: shape(activity, found, region.min_group), key
        )
        return {**_about(region), "activity": activity, **body}
    body = shape(activity, steps, region.min_group)
    return {**_about(region), **body, "suppressed_groups": body["suppressed_groups"] + withheld}


@router.get("/{name}/analytics/dropoff", responses=_ERRORS, summary="Where the region's learners stop")
async def dropoff(
    name: str,
    request: Request,
    app: ServicesDep,
    who: CallerDep,
    activity: Activity,
    since: Since = None,
    until: Until = None,
    fmt: Format = None,
    group_by: ByStore = None,
) -> Response:
    check_iri(activity, "activity")
    by = _by_store(group_by)
    region, steps, withheld = await _steps(name, request, app, who, activity, window_of(since, until), by)
    body = _per_step(region, activity, steps, withheld, metrics.dropoff, "steps", by)
    return respond(request, body, fmt, metrics.group_rows(body, "steps") if by else body["steps"], None)


@router.get("/{name}/analytics/elements", responses=_ERRORS, summary="Learning elements across the region")
async def elements(
    name: str,
    request: Request,
    app: ServicesDep,
    who: CallerDep,
    activity: Activity,
    since: Since = None,
    until: Until = None,
    fmt: Format = None,
    group_by: ByStore = None,
) -> Response:
    check_iri(activity, "activity")
    by = _by_store(group_by)
    region, steps, withheld = await _steps(name, request, app, who, activity, window_of(since, until), by)
    body = _per_step(region, activity, steps, withheld, metrics.elements, "elements", by)
    return respond(request, body, fmt, metrics.group_rows(body, "elements") if by else body["elements"], None)
