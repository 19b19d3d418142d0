"""The analytics API: completion, engagement, when people learn, drop-off, learners.

Aggregates need `analytics/read` (or `all`); the per-learner list needs `analytics/learners`.
Everything is read from the rollups within the caller's store; nothing scans statements.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncConnection

from lrs.analytics import metrics
from lrs.analytics import reads as analytics_reads
from lrs.analytics.reads import Reach, Window
from lrs.analytics.rollup import COUNTED_YEARS
from lrs.api.auth import CallerDep
from lrs.api.responses import json_response
from lrs.api.services import Services, ServicesDep
from lrs.ops.caller import Caller
from lrs.scopes import ANALYTICS_LEARNERS, ANALYTICS_READ
from lrs.xapi.errors import BadRequest, Unavailable
from lrs.xapi.langtags import best_language, parse_accept_language
from lrs.xapi.timestamps import format_timestamp, parse_timestamp
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


def _hour(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    instant = parse_timestamp(value)
    if instant is None:
        raise BadRequest(f"{name}: must be an ISO 8601 timestamp, got {value!r}")
    if instant.astimezone(UTC).year not in COUNTED_YEARS:
        raise BadRequest(
            f"{name}: analytics count statements from the year {COUNTED_YEARS.start} "
            f"to {COUNTED_YEARS.stop - 1}; got {value!r}"
        )
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


def _tz(app: Services, who: Caller, tz: str | None) -> ZoneInfo:
    name = tz or who.settings.zone(app.settings.default_timezone)
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadRequest(f"tz: {name!r} is not an IANA time zone name") from None


def _activity(value: str, name: str = "activity") -> str:
    if not is_iri(value):
        raise BadRequest(f"{name}: must be an IRI, got {value!r}")
    return value


AS_OF_HEADER = "X-Analytics-As-Of"
SUPPRESSED_HEADER = "X-Analytics-Suppressed-Groups"


def _respond(
    request: Request, body: dict[str, Any], fmt: str | None, rows_key: str, as_of: datetime | None
) -> Response:
    """JSON, or CSV of the rows. Both say ``as_of`` (the stored time the figures are exact up
    to) and how many groups were left out for having too few learners: CSV rows cannot, so
    headers carry both."""
    stamp = format_timestamp(as_of) if as_of is not None else None
    headers = {SUPPRESSED_HEADER: str(body.get("suppressed_groups", 0))}
    if stamp:
        headers[AS_OF_HEADER] = stamp
    wants_csv = fmt == "csv" or (fmt is None and "text/csv" in request.headers.get("accept", ""))
    if wants_csv:
        return Response(metrics.to_csv(body[rows_key]), media_type="text/csv; charset=utf-8", headers=headers)
    return json_response({**body, "as_of": stamp}, headers=headers)


def _names(request: Request, named: dict[str, dict[str, str]]) -> dict[str, str | None]:
    """Each activity's name in the language the caller prefers."""
    languages = parse_accept_language(request.headers.get("accept-language"))
    out: dict[str, str | None] = {}
    for activity, name in named.items():
        key = best_language(list(name), languages)
        out[activity] = name[key] if key else None
    return out


@dataclass
class Ask:
    """What every analytics request shares: who asks, the time window, zone and format, and
    (once read) how fresh the figures are."""

    request: Request
    app: Services
    who: Caller
    window: Window
    zone: ZoneInfo
    fmt: str | None
    as_of: datetime | None = None

    async def read(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """``work`` in one read transaction, with the time its figures are exact up to."""
        if not self.app.settings.analytics_rollups:
            raise Unavailable("analytics rollups are turned off on this server (LRS_ANALYTICS_ROLLUPS=false)")

        async def with_freshness(conn: AsyncConnection) -> T:
            self.as_of = await analytics_reads.as_of(conn, self.who.store_id)
            return await work(conn)

        return await self.app.db.read(with_freshness)

    def respond(self, body: dict[str, Any], rows_key: str) -> Response:
        return _respond(self.request, body, self.fmt, rows_key, self.as_of)

    @property
    def min_group(self) -> int:
        return self.who.settings.min_group_size


def _asker(scopes: frozenset[str]) -> Callable[..., Awaitable[Ask]]:
    # Async, so that FastAPI does not hand it to its thread pool on every request.
    async def ask(
        request: Request,
        app: ServicesDep,
        who: CallerDep,
        since: Since = None,
        until: Until = None,
        tz: Tz = None,
        fmt: Format = None,
    ) -> Ask:
        """The common parameters, checked after the credential's scope."""
        who.require(scopes)
        return Ask(request, app, who, _window(since, until), _tz(app, who, tz), fmt)

    return ask


AskDep = Annotated[Ask, Depends(_asker(ANALYTICS_READ))]
LearnersAskDep = Annotated[Ask, Depends(_asker(ANALYTICS_LEARNERS))]
OptionalActivity = Annotated[str | None, Query(description="Only this activity")]


@router.get("/completion", responses=_ERRORS, summary="Completion, passing, scores and time")
async def completion(
    ask: AskDep,
    activity: Activity,
    group_by: Annotated[
        str | None, Query(description="team, authority, homepage, or extension:<IRI>")
    ] = None,
) -> Response:
    _activity(activity)
    metrics.check_group_by(group_by)
    groups = await ask.read(
        lambda c: analytics_reads.completion(c, ask.who.store_id, activity, ask.window, group_by)
    )
    return ask.respond(metrics.completion(activity, groups, group_by, ask.min_group), "groups")


@router.get("/engagement", responses=_ERRORS, summary="Activity over time")
async def engagement(
    ask: AskDep,
    activity: OptionalActivity = None,
    interval: Annotated[Literal["day", "week", "month"], Query()] = "day",
) -> Response:
    if activity is not None:
        _activity(activity)
    rows = await ask.read(
        lambda c: analytics_reads.engagement(
            c, ask.who.store_id, activity, interval, ask.zone.key, ask.window
        )
    )
    body = metrics.engagement(rows, interval, ask.zone, ask.window.since, ask.window.until, ask.min_group)
    return ask.respond(body, "series")


@router.get("/engagement/hours", responses=_ERRORS, summary="When learning happens")
async def engagement_hours(ask: AskDep, activity: OptionalActivity = None) -> Response:
    if activity is not None:
        _activity(activity)
    cells = await ask.read(
        lambda c: analytics_reads.hours(c, ask.who.store_id, activity, ask.zone.key, ask.window)
    )
    return ask.respond(metrics.hours(cells, ask.zone, ask.min_group), "cells")


@router.get("/dropoff", responses=_ERRORS, summary="Where learners stop within an activity")
async def dropoff(ask: AskDep, activity: Activity) -> Response:
    _activity(activity)
    store_id = ask.who.store_id

    async def work(c: AsyncConnection) -> tuple[list[Reach], dict[str, dict[str, Any]]]:
        kids = await analytics_reads.child_activities(c, store_id, activity)
        steps = await analytics_reads.reach(c, store_id, activity, kids, ask.window)
        return steps, await analytics_reads.activity_names(c, store_id, set(kids))

    steps, definitions = await ask.read(work)
    names = _names(ask.request, definitions)
    body = metrics.dropoff(activity, [(step, names.get(step.activity)) for step in steps], ask.min_group)
    return ask.respond(body, "steps")


@router.get(
    "/learners",
    responses=_ERRORS,
    summary="Each learner's progress (personal data: needs analytics/learners)",
)
async def learners(ask: LearnersAskDep, activity: Activity) -> Response:
    _activity(activity)
    rows = await ask.read(lambda c: analytics_reads.progress(c, ask.who.store_id, activity, ask.window))
    return ask.respond({"activity": activity, "learners": metrics.learners(rows)}, "learners")


@router.get("/activities", responses=_ERRORS, summary="Activities with their figures")
async def activities(
    ask: AskDep,
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
    store_id = ask.who.store_id

    async def work(c: AsyncConnection) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        summaries = await analytics_reads.activity_summaries(c, store_id, ask.window)
        body = metrics.activities(summaries, sort, order == "desc", limit, offset, ask.min_group)
        # Names only for the page shown: decoding every definition would cost the most.
        page = {row["activity"] for row in body["activities"]}
        return body, await analytics_reads.activity_names(c, store_id, page)

    body, definitions = await ask.read(work)
    names = _names(ask.request, definitions)
    for row in body["activities"]:
        row["name"] = names.get(row["activity"])
    return ask.respond(body, "activities")
