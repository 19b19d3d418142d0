"""The analytics API: completion, engagement, when people learn, drop-off, learners.

Aggregates need `analytics/read` (or `all`); the per-learner list needs `analytics/learners`.
Everything is read from the rollups within the caller's store; nothing scans statements.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncConnection

from lrs.analytics import metrics
from lrs.analytics import store as analytics_store
from lrs.analytics.store import Window
from lrs.api.auth import ANALYTICS_LEARNERS, ANALYTICS_READ, Caller, CallerDep
from lrs.api.responses import json_response
from lrs.store import activities as activity_store
from lrs.store.database import Database
from lrs.xapi.errors import BadRequest, Unavailable
from lrs.xapi.langtags import best_language, parse_accept_language
from lrs.xapi.timestamps import parse_timestamp
from lrs.xapi.validate import is_iri

router = APIRouter(prefix="/analytics", tags=["Analytics"])
T = TypeVar("T")

Since = Annotated[
    str | None, Query(description="Only statements with a timestamp at or after this whole hour (ISO 8601).")
]
Until = Annotated[
    str | None, Query(description="Only statements with a timestamp before this whole hour (ISO 8601).")
]
Tz = Annotated[
    str | None,
    Query(description="IANA time zone for periods and hours; default: the store's, else the LRS's."),
]
Format = Annotated[
    Literal["json", "csv"] | None,
    Query(alias="format", description="`csv` for CSV of the same rows (or send Accept: text/csv)."),
]
Activity = Annotated[str, Query(description="The activity IRI.")]
_ERRORS: dict[int | str, dict[str, str]] = {
    400: {"description": "A parameter is malformed"},
    401: {"description": "Missing or wrong credentials"},
    403: {"description": "The credential lacks the needed scope"},
}


async def _read(request: Request, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    if not request.app.state.settings.analytics_rollups:
        raise Unavailable("analytics rollups are turned off on this server (LRS_ANALYTICS_ROLLUPS=false)")
    db: Database = request.app.state.db
    return await db.read(work)


def _hour(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    instant = parse_timestamp(value)
    if instant is None:
        raise BadRequest(f"{name}: must be an ISO 8601 timestamp, got {value!r}")
    if (instant.minute, instant.second, instant.microsecond) != (0, 0, 0):
        raise BadRequest(
            f"{name}: analytics count by the hour; give a whole hour, "
            f"e.g. {instant.replace(minute=0, second=0, microsecond=0).isoformat()}"
        )
    return instant


def _window(since: str | None, until: str | None) -> Window:
    window = Window(_hour(since, "since"), _hour(until, "until"))
    if window.since and window.until and window.since >= window.until:
        raise BadRequest("since: must be before until")
    return window


def _tz(request: Request, who: Caller, tz: str | None) -> ZoneInfo:
    name = tz or who.settings.timezone or request.app.state.settings.default_timezone
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadRequest(f"tz: {name!r} is not an IANA time zone name") from None


def _activity(value: str, name: str = "activity") -> str:
    if not is_iri(value):
        raise BadRequest(f"{name}: must be an IRI, got {value!r}")
    return value


def _respond(request: Request, body: dict[str, Any], fmt: str | None, rows_key: str) -> Response:
    wants_csv = fmt == "csv" or (fmt is None and "text/csv" in request.headers.get("accept", ""))
    if wants_csv:
        return Response(metrics.to_csv(body[rows_key]), media_type="text/csv; charset=utf-8")
    return json_response(body)


def _names(request: Request, definitions: dict[str, dict[str, Any]]) -> dict[str, str | None]:
    languages = parse_accept_language(request.headers.get("accept-language"))
    out: dict[str, str | None] = {}
    for activity, definition in definitions.items():
        name = definition.get("name") or {}
        key = best_language(list(name), languages)
        out[activity] = name[key] if key else None
    return out


@router.get("/completion", responses=_ERRORS, summary="Completion, passing, scores and time")
async def completion(
    request: Request,
    who: CallerDep,
    activity: Activity,
    group_by: Annotated[
        str | None, Query(description="team, authority, homepage, or extension:<IRI>")
    ] = None,
    since: Since = None,
    until: Until = None,
    tz: Tz = None,
    fmt: Format = None,
) -> Response:
    who.require(ANALYTICS_READ)
    _activity(activity)
    metrics.check_group_by(group_by)
    window = _window(since, until)
    _tz(request, who, tz)
    rows = await _read(
        request, lambda c: analytics_store.progress(c, who.store_id, activity, window, group_by)
    )
    body = metrics.completion(activity, rows, group_by, who.settings.min_group_size)
    return _respond(request, body, fmt, "groups")


@router.get("/engagement", responses=_ERRORS, summary="Activity over time")
async def engagement(
    request: Request,
    who: CallerDep,
    interval: Annotated[Literal["day", "week", "month"], Query()] = "day",
    activity: Annotated[str | None, Query(description="Only this activity")] = None,
    since: Since = None,
    until: Until = None,
    tz: Tz = None,
    fmt: Format = None,
) -> Response:
    who.require(ANALYTICS_READ)
    if activity is not None:
        _activity(activity)
    window = _window(since, until)
    zone = _tz(request, who, tz)
    rows = await _read(
        request, lambda c: analytics_store.engagement(c, who.store_id, activity, interval, zone.key, window)
    )
    body = metrics.engagement(rows, interval, zone, window.since, window.until, who.settings.min_group_size)
    return _respond(request, body, fmt, "series")


@router.get("/engagement/hours", responses=_ERRORS, summary="When learning happens")
async def engagement_hours(
    request: Request,
    who: CallerDep,
    activity: Annotated[str | None, Query(description="Only this activity")] = None,
    since: Since = None,
    until: Until = None,
    tz: Tz = None,
    fmt: Format = None,
) -> Response:
    who.require(ANALYTICS_READ)
    if activity is not None:
        _activity(activity)
    window = _window(since, until)
    zone = _tz(request, who, tz)
    cells = await _read(request, lambda c: analytics_store.hours(c, who.store_id, activity, zone.key, window))
    return _respond(request, metrics.hours(cells, zone, who.settings.min_group_size), fmt, "cells")


@router.get("/dropoff", responses=_ERRORS, summary="Where learners stop within an activity")
async def dropoff(
    request: Request,
    who: CallerDep,
    activity: Activity,
    since: Since = None,
    until: Until = None,
    tz: Tz = None,
    fmt: Format = None,
) -> Response:
    who.require(ANALYTICS_READ)
    _activity(activity)
    window = _window(since, until)
    _tz(request, who, tz)

    async def work(c: AsyncConnection) -> tuple[list[Any], dict[str, dict[str, Any]]]:
        kids = await analytics_store.child_activities(c, who.store_id, activity)
        steps = [(kid, await analytics_store.progress(c, who.store_id, kid, window)) for kid in kids]
        return steps, await activity_store.get_many(c, who.store_id, set(kids))

    steps, definitions = await _read(request, work)
    names = _names(request, definitions)
    body = metrics.dropoff(
        activity, [(a, names.get(a), rows) for a, rows in steps], who.settings.min_group_size
    )
    return _respond(request, body, fmt, "steps")


@router.get(
    "/learners",
    responses=_ERRORS,
    summary="Each learner's progress (personal data: needs analytics/learners)",
)
async def learners(
    request: Request,
    who: CallerDep,
    activity: Activity,
    since: Since = None,
    until: Until = None,
    tz: Tz = None,
    fmt: Format = None,
) -> Response:
    who.require(ANALYTICS_LEARNERS)
    _activity(activity)
    window = _window(since, until)
    _tz(request, who, tz)
    rows = await _read(request, lambda c: analytics_store.progress(c, who.store_id, activity, window))
    return _respond(request, {"activity": activity, "learners": metrics.learners(rows)}, fmt, "learners")


@router.get("/activities", responses=_ERRORS, summary="Activities with their figures")
async def activities(
    request: Request,
    who: CallerDep,
    sort: Annotated[
        Literal[
            "learners_started", "learners_completed", "completion_rate", "time_spent_seconds", "activity"
        ],
        Query(),
    ] = "learners_started",
    order: Annotated[Literal["asc", "desc"], Query()] = "desc",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
    since: Since = None,
    until: Until = None,
    tz: Tz = None,
    fmt: Format = None,
) -> Response:
    who.require(ANALYTICS_READ)
    window = _window(since, until)
    _tz(request, who, tz)

    async def work(c: AsyncConnection) -> tuple[list[Any], dict[str, dict[str, Any]]]:
        summaries = await analytics_store.activity_summaries(c, who.store_id, window)
        ids = {s.activity for s in summaries}
        return summaries, await activity_store.get_many(c, who.store_id, ids)

    summaries, definitions = await _read(request, work)
    body = metrics.activities(
        summaries,
        _names(request, definitions),
        sort,
        order == "desc",
        limit,
        offset,
        who.settings.min_group_size,
    )
    return _respond(request, body, fmt, "activities")
