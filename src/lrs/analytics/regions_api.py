"""What a region asks: aggregates over its member stores, never anything per person.

Every route needs a region credential (scope ``region/analytics``) of the region named in
the path. Figures are read from each member store's rollups (one index range per store)
and suppressed as within a store, with the region's minimum group size (never below any
member's own) and complementary suppression across members.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncConnection

from lrs.analytics import metrics
from lrs.analytics import reads as analytics_reads
from lrs.analytics.api import (
    Activity,
    ActivitySort,
    Format,
    Limit,
    Offset,
    OptionalActivity,
    Order,
    Since,
    Tz,
    Until,
    names_in,
    respond,
    rows_of,
    window_of,
    zone_named,
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

T = TypeVar("T")
router = APIRouter(prefix="/regions", tags=["Regions"], dependencies=[Depends(known_parameters)])
_ERRORS: dict[int | str, dict[str, str]] = {
    400: {"description": "A parameter is malformed"},
    401: {"description": "Missing or wrong credentials"},
    403: {"description": "Not a credential of this region"},
}


def _about(region: Sharing) -> dict[str, Any]:
    return {"region": region.region, "stores": len(region.store_ids), "min_group_size": region.min_group}


Named = dict[str, dict[str, str]]  # activity IRI: its name, a language map


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


@dataclass
class RegionAsk:
    """What every region request shares: who asks about which region, the window and the
    format."""

    request: Request
    app: Services
    who: Caller
    name: str
    window: Window
    fmt: str | None

    async def read(self, work: Callable[[AsyncConnection, Sharing], Awaitable[T]]) -> T:
        """``work`` in one read transaction, with the region as it stands (403 unless the
        credential is this region's)."""

        async def in_region(conn: AsyncConnection) -> T:
            return await work(conn, await regions.sharing(conn, self.who, self.name))

        return await analytics_reads.read(self.app.db, in_region, self.who.key)

    def respond(self, body: dict[str, Any], rows_key: str) -> Response:
        return respond(self.request, body, self.fmt, rows_of(body, rows_key), None)


async def _in_window(
    name: str,
    request: Request,
    app: ServicesDep,
    who: CallerDep,
    since: Since = None,
    until: Until = None,
    fmt: Format = None,
) -> RegionAsk:
    return RegionAsk(request, app, who, name, window_of(since, until), fmt)


async def _all_time(
    name: str, request: Request, app: ServicesDep, who: CallerDep, fmt: Format = None
) -> RegionAsk:
    return RegionAsk(request, app, who, name, Window(None, None), fmt)


InWindow = Annotated[RegionAsk, Depends(_in_window)]
AllTime = Annotated[RegionAsk, Depends(_all_time)]


@router.get("/{name}/analytics/completion", responses=_ERRORS, summary="Completion across the region")
async def completion(
    ask: InWindow,
    activity: Activity,
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

    async def work(conn: AsyncConnection, region: Sharing) -> dict[str, Any]:
        stores = region.store_ids
        shared = await analytics_reads.region_completion(conn, stores, activity, ask.window, grouping)
        body = metrics.region_completion(activity, shared, grouping, region.min_group, region.shown_as)
        return {**_about(region), **body}

    return ask.respond(await ask.read(work), "groups")


@router.get("/{name}/analytics/activities", responses=_ERRORS, summary="Activities across the region")
async def activities(
    ask: AllTime,
    sort: ActivitySort = "learners_started",
    order: Order = "desc",
    limit: Limit = 100,
    offset: Offset = 0,
) -> Response:
    async def work(conn: AsyncConnection, region: Sharing) -> tuple[dict[str, Any], Named]:
        summaries = await analytics_reads.region_activities(conn, region.store_ids)
        body = metrics.region_activities(summaries, sort, order == "desc", limit, offset, region.min_group)
        named = await analytics_reads.activity_names(
            conn, region.store_ids, {row["activity"] for row in body["activities"]}
        )
        return {**_about(region), **body}, named

    body, named = await ask.read(work)
    names = names_in(ask.request, named)
    for row in body["activities"]:
        row["name"] = names.get(row["activity"])
    return ask.respond(body, "activities")


@router.get("/{name}/analytics/engagement", responses=_ERRORS, summary="Activity over time across the region")
async def engagement(
    ask: InWindow,
    activity: OptionalActivity = None,
    interval: Annotated[Literal["day", "week", "month"], Query()] = "day",
    tz: Tz = None,
    group_by: ByStore = None,
) -> Response:
    if activity is not None:
        check_iri(activity, "activity")
    zone = zone_named(tz or ask.app.settings.default_timezone)
    since, until = ask.window.since, ask.window.until

    async def work(conn: AsyncConnection, region: Sharing) -> dict[str, Any]:
        least = region.min_group
        if _by_store(group_by):
            by_store = await analytics_reads.region_engagement(
                conn, region.store_ids, activity, interval, zone.key, ask.window
            )
            rows = [replace(p, group=region.shown_as[s]) for s, found in by_store.items() for p in found]
            starts = [p.start for p in rows]

            def series(found: list[Period]) -> dict[str, Any]:
                return metrics.engagement(found, interval, zone, since, until, least, starts)

            body = metrics.by_group(rows, lambda p: p.group, series, "series")
            return {**_about(region), "interval": interval, "tz": zone.key, **body}
        summed = await analytics_reads.region_engagement_summed(
            conn, region.store_ids, activity, interval, zone.key, ask.window
        )
        merged, hidden = metrics.summed_figures(summed, lambda p: p.start, least)
        total = metrics.engagement(merged, interval, zone, since, until, least, hidden=hidden)
        return {**_about(region), **total}

    return ask.respond(await ask.read(work), "series")


@router.get("/{name}/analytics/engagement/hours", responses=_ERRORS, summary="When the region learns")
async def engagement_hours(
    ask: InWindow, activity: OptionalActivity = None, tz: Tz = None, group_by: ByStore = None
) -> Response:
    if activity is not None:
        check_iri(activity, "activity")
    zone = zone_named(tz or ask.app.settings.default_timezone)

    async def work(conn: AsyncConnection, region: Sharing) -> dict[str, Any]:
        least = region.min_group
        if _by_store(group_by):
            by_store = await analytics_reads.region_hours(
                conn, region.store_ids, activity, zone.key, ask.window
            )
            cells = [replace(c, group=region.shown_as[s]) for s, found in by_store.items() for c in found]
            body = metrics.by_group(
                cells, lambda c: c.group, lambda found: metrics.hours(found, zone, least), "cells"
            )
            return {**_about(region), "tz": zone.key, **body}
        summed = await analytics_reads.region_hours_summed(
            conn, region.store_ids, activity, zone.key, ask.window
        )
        merged, hidden = metrics.summed_figures(summed, lambda c: (c.weekday, c.hour), least)
        return {**_about(region), **metrics.hours(merged, zone, least, hidden)}

    return ask.respond(await ask.read(work), "cells")


async def _per_step(
    ask: RegionAsk, activity: str, group_by: str | None, shape: Callable[..., dict[str, Any]], key: str
) -> Response:
    """A course's steps across the region, shaped as drop-off or elements (with
    ``group_by=store``: each member store's own figures, under the name the region shows it
    by)."""
    check_iri(activity, "activity")
    by = _by_store(group_by)

    async def work(conn: AsyncConnection, region: Sharing) -> tuple[Sharing, list[Reach], Named]:
        kids = await analytics_reads.child_activities(conn, region.store_ids, activity)
        among = Among("store") if by else EVERYONE
        steps = await analytics_reads.reach(conn, region.store_ids, activity, kids, ask.window, among)
        return region, steps, await analytics_reads.activity_names(conn, region.store_ids, set(kids))

    region, steps, named = await ask.read(work)
    names = names_in(ask.request, named)
    least = region.min_group
    if by:
        shown = [(replace(s, group=region.shown_as[int(s.group)]), names.get(s.activity)) for s in steps]
        grouped = metrics.by_group(
            shown, lambda s: s[0].group, lambda found: shape(activity, found, least), key
        )
        return ask.respond({**_about(region), "activity": activity, **grouped}, key)
    kept, withheld = metrics.shared_steps([(s, names.get(s.activity)) for s in steps], least)
    body = shape(activity, kept, least)
    body["suppressed_groups"] += withheld
    return ask.respond({**_about(region), **body}, key)


@router.get("/{name}/analytics/dropoff", responses=_ERRORS, summary="Where the region's learners stop")
async def dropoff(ask: InWindow, activity: Activity, group_by: ByStore = None) -> Response:
    return await _per_step(ask, activity, group_by, metrics.dropoff, "steps")


@router.get("/{name}/analytics/elements", responses=_ERRORS, summary="Learning elements across the region")
async def elements(ask: InWindow, activity: Activity, group_by: ByStore = None) -> Response:
    return await _per_step(ask, activity, group_by, metrics.elements, "elements")
