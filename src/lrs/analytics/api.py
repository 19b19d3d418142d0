"""The analytics API: completion, mandatory training (assignments), engagement, when people
learn, drop-off, learning elements, feedback, learners.

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
from lrs.analytics.reads import (
    EVERYONE,
    NO_FIGURES,
    Among,
    AssignedLearner,
    AssignmentFigures,
    GroupFigures,
    Period,
    Reach,
    Window,
)
from lrs.analytics.rollup import COUNTED_YEARS
from lrs.api.auth import CallerDep
from lrs.api.params import check_parameters
from lrs.api.responses import json_response
from lrs.api.services import Services, ServicesDep
from lrs.ops.caller import Caller
from lrs.scopes import ANALYTICS_LEARNERS, ANALYTICS_READ
from lrs.xapi.errors import BadRequest, Unavailable
from lrs.xapi.langtags import best_language, parse_accept_language
from lrs.xapi.timestamps import format_timestamp, parse_timestamp
from lrs.xapi.validate import check_iri

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
# How an activity list is sorted and paged.
ActivitySort = Annotated[
    Literal["learners_started", "learners_completed", "completion_rate", "time_spent_seconds", "activity"],
    Query(),
]
Order = Annotated[Literal["asc", "desc"], Query()]
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0)]
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


def window_of(since: str | None, until: str | None) -> Window:
    window = Window(_hour(since, "since"), _hour(until, "until"))
    if window.since and window.until and window.since >= window.until:
        raise BadRequest("since: must be before until")
    return window


def _tz(app: Services, who: Caller, tz: str | None) -> ZoneInfo:
    return zone_named(tz or who.settings.zone(app.settings.default_timezone))


def zone_named(name: str) -> ZoneInfo:
    """The time zone a ``tz`` parameter names; 400 for a name that is not one."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadRequest(f"tz: {name!r} is not an IANA time zone name") from None


AS_OF_HEADER = "X-Analytics-As-Of"
SUPPRESSED_HEADER = "X-Analytics-Suppressed-Groups"


def respond(
    request: Request,
    body: dict[str, Any],
    fmt: str | None,
    rows: list[dict[str, Any]],
    as_of: datetime | None,
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
        return Response(metrics.to_csv(rows), media_type="text/csv; charset=utf-8", headers=headers)
    return json_response({**body, "as_of": stamp}, headers=headers)


def rows_of(body: dict[str, Any], rows_key: str) -> list[dict[str, Any]]:
    """The rows a CSV answer holds: those under ``rows_key``, or (grouped) each group's,
    led by its group."""
    grouped = "groups" in body and rows_key != "groups"
    return metrics.group_rows(body, rows_key) if grouped else list(body[rows_key])


def names_in(request: Request, named: dict[str, dict[str, str]]) -> dict[str, str | None]:
    """Each activity's name in the language the caller prefers."""
    languages = parse_accept_language(request.headers.get("accept-language"))
    out: dict[str, str | None] = {}
    for activity, name in named.items():
        key = best_language(list(name), languages)
        out[activity] = name[key] if key else None
    return out


async def _nothing(conn: AsyncConnection) -> None:
    """A read with nothing to ask beyond what ``Ask.read`` asks itself."""


@dataclass
class Ask:
    """What every analytics request shares: who asks, the time window, zone and format, whose
    figures and how grouped, and (once read) how fresh the figures are."""

    request: Request
    app: Services
    who: Caller
    window: Window
    zone: ZoneInfo
    fmt: str | None
    among: Among = EVERYONE
    as_of: datetime | None = None

    async def read(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """``work`` in one read transaction, with the time its figures are exact up to."""
        if not self.app.settings.analytics_rollups:
            raise Unavailable("analytics rollups are turned off on this server (LRS_ANALYTICS_ROLLUPS=false)")

        async def with_freshness(conn: AsyncConnection) -> T:
            if self.among.cohort is not None and not await analytics_reads.cohort_exists(
                conn, self.who.store_id, self.among.cohort
            ):
                raise BadRequest(f"cohort: no cohort named {self.among.cohort!r} in this store")
            self.as_of = await analytics_reads.as_of(conn, self.who.store_id)
            return await work(conn)

        return await analytics_reads.read(self.app.db, with_freshness, self.who.key)

    async def activity_summaries(self) -> list[analytics_reads.ActivitySummary]:
        """Every activity's figures in the window, after ``read``'s checks and freshness
        (analytics_reads.read_activity_summaries: a window's are read in parts at once)."""
        await self.read(_nothing)
        return await analytics_reads.read_activity_summaries(
            self.app.db, self.who.key, self.who.store_id, self.window, self.among
        )

    def respond(
        self, body: dict[str, Any], rows_key: str, rows: list[dict[str, Any]] | None = None
    ) -> Response:
        """JSON of ``body``, or CSV of ``rows`` (default: its rows under ``rows_key``; grouped,
        each led by its group)."""
        return respond(
            self.request, body, self.fmt, rows_of(body, rows_key) if rows is None else rows, self.as_of
        )

    @property
    def min_group(self) -> int:
        return self.who.settings.min_group_size

    @property
    def grouped(self) -> bool:
        return self.among.group_by is not None


GroupBy = Annotated[
    str | None,
    Query(
        description="Figures per group: cohort, platform, language, team, authority, homepage, or "
        "extension:<IRI> (a learner's group is what their latest statement on the activity says; "
        "by cohort, a learner counts in every cohort they are in at the window's end)"
    ),
]
InCohort = Annotated[
    str | None,
    Query(description="Only learners in this cohort (or a cohort inside it) at the window's end, or now"),
]


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
        group_by: GroupBy = None,
        cohort: InCohort = None,
    ) -> Ask:
        """The common parameters, checked after the credential's scope."""
        who.require(scopes)
        check_parameters(request)
        metrics.check_group_by(group_by)
        window = window_of(since, until)
        return Ask(request, app, who, window, _tz(app, who, tz), fmt, Among(group_by, cohort))

    return ask


def _learners_asker(scopes: frozenset[str]) -> Callable[..., Awaitable[Ask]]:
    async def ask(
        request: Request,
        app: ServicesDep,
        who: CallerDep,
        since: Since = None,
        until: Until = None,
        fmt: Format = None,
        cohort: InCohort = None,
    ) -> Ask:
        """The parameters of a list of learners (no grouping: each learner is a row)."""
        who.require(scopes)
        check_parameters(request)
        return Ask(request, app, who, window_of(since, until), ZoneInfo("UTC"), fmt, Among(None, cohort))

    return ask


AskDep = Annotated[Ask, Depends(_asker(ANALYTICS_READ))]
LearnersAskDep = Annotated[Ask, Depends(_learners_asker(ANALYTICS_LEARNERS))]
OptionalActivity = Annotated[str | None, Query(description="Only this activity")]


@router.get("/completion", responses=_ERRORS, summary="Completion, passing, scores, time and cost")
async def completion(ask: AskDep, activity: Activity) -> Response:
    check_iri(activity, "activity")
    store_id = ask.who.store_id

    async def work(c: AsyncConnection) -> tuple[list[GroupFigures], dict[str, Any] | None]:
        groups = await analytics_reads.completion(c, store_id, activity, ask.window, ask.among)
        recorded = await analytics_reads.activity_cost(c, store_id, activity)
        if recorded is None:
            return groups, None
        # Each learner once, however the answer groups them.
        everyone = Among(None, ask.among.cohort)
        totals = await analytics_reads.completion(c, store_id, activity, ask.window, everyone)
        return groups, metrics.cost(recorded, totals[0] if totals else NO_FIGURES)

    groups, cost = await ask.read(work)
    body = metrics.completion(activity, groups, ask.among.group_by, ask.min_group)
    return ask.respond({**body, "cost": cost}, "groups")


@router.get("/assignments", responses=_ERRORS, summary="Mandatory training: the assigned learners' progress")
async def assignments(ask: AskDep, activity: Activity) -> Response:
    check_iri(activity, "activity")
    store_id = ask.who.store_id

    async def work(c: AsyncConnection) -> tuple[list[AssignmentFigures], dict[str, Any] | None]:
        rows = await analytics_reads.assignments(c, store_id, [activity], ask.window, ask.among)
        recorded = await analytics_reads.activity_cost(c, store_id, activity)
        if recorded is None:
            return rows, None
        totals = await analytics_reads.assigned_totals(c, store_id, activity, ask.window, ask.among.cohort)
        return rows, metrics.cost(recorded, totals)

    rows, cost = await ask.read(work)
    return ask.respond({**metrics.assignments(activity, rows, ask.min_group), "cost": cost}, "groups")


@router.get(
    "/assignments/learners",
    responses=_ERRORS,
    summary="Each assigned learner's status and due date (personal data: needs analytics/learners)",
)
async def assignment_learners(ask: LearnersAskDep, activity: Activity) -> Response:
    check_iri(activity, "activity")

    async def work(c: AsyncConnection) -> tuple[list[AssignedLearner], datetime]:
        found = await analytics_reads.assigned_learners(
            c, ask.who.store_id, activity, ask.window, ask.among.cohort
        )
        return found, ask.window.until or await analytics_reads.now(c)

    rows, now = await ask.read(work)
    return ask.respond({"activity": activity, "learners": metrics.assigned_learners(rows, now)}, "learners")


@router.get("/engagement", responses=_ERRORS, summary="Activity over time")
async def engagement(
    ask: AskDep,
    activity: OptionalActivity = None,
    interval: Annotated[Literal["day", "week", "month"], Query()] = "day",
) -> Response:
    if activity is not None:
        check_iri(activity, "activity")
    rows = await ask.read(
        lambda c: analytics_reads.engagement(
            c, ask.who.store_id, activity, interval, ask.zone.key, ask.window, ask.among
        )
    )
    starts = [r.start for r in rows]

    def series(found: list[Period]) -> dict[str, Any]:
        return metrics.engagement(
            found, interval, ask.zone, ask.window.since, ask.window.until, ask.min_group, starts
        )

    if not ask.grouped:
        return ask.respond(series(rows), "series")
    body = metrics.by_group(rows, lambda r: r.group, series, "series")
    return ask.respond({"interval": interval, "tz": ask.zone.key, **body}, "series")


@router.get("/engagement/hours", responses=_ERRORS, summary="When learning happens")
async def engagement_hours(ask: AskDep, activity: OptionalActivity = None) -> Response:
    if activity is not None:
        check_iri(activity, "activity")
    cells = await ask.read(
        lambda c: analytics_reads.hours(c, ask.who.store_id, activity, ask.zone.key, ask.window, ask.among)
    )
    if not ask.grouped:
        return ask.respond(metrics.hours(cells, ask.zone, ask.min_group), "cells")
    body = metrics.by_group(
        cells, lambda c: c.group, lambda found: metrics.hours(found, ask.zone, ask.min_group), "cells"
    )
    return ask.respond({"tz": ask.zone.key, **body}, "cells")


async def _steps(ask: Ask, activity: str) -> list[tuple[Reach, str | None]]:
    """Each child activity's reach per group, with its name in the caller's language."""
    store_id = ask.who.store_id

    async def work(c: AsyncConnection) -> tuple[list[Reach], dict[str, dict[str, Any]]]:
        kids = await analytics_reads.child_activities(c, store_id, activity)
        steps = await analytics_reads.reach(c, store_id, activity, kids, ask.window, ask.among)
        return steps, await analytics_reads.activity_names(c, store_id, set(kids))

    steps, definitions = await ask.read(work)
    names = names_in(ask.request, definitions)
    return [(step, names.get(step.activity)) for step in steps]


def _per_step(
    ask: Ask,
    activity: str,
    steps: list[tuple[Reach, str | None]],
    shape: Callable[..., dict[str, Any]],
    key: str,
) -> Response:
    if not ask.grouped:
        return ask.respond(shape(activity, steps, ask.min_group), key)
    body = metrics.by_group(
        steps, lambda s: s[0].group, lambda found: shape(activity, found, ask.min_group), key
    )
    return ask.respond({"activity": activity, **body}, key)


@router.get("/dropoff", responses=_ERRORS, summary="Where learners stop within an activity")
async def dropoff(ask: AskDep, activity: Activity) -> Response:
    check_iri(activity, "activity")
    return _per_step(ask, activity, await _steps(ask, activity), metrics.dropoff, "steps")


@router.get("/elements", responses=_ERRORS, summary="Which learning elements engage and teach")
async def elements(ask: AskDep, activity: Activity) -> Response:
    check_iri(activity, "activity")
    return _per_step(ask, activity, await _steps(ask, activity), metrics.elements, "elements")


@router.get("/feedback", responses=_ERRORS, summary="How participants rate an activity")
async def feedback(ask: AskDep, activity: Activity) -> Response:
    check_iri(activity, "activity")
    counts = await ask.read(
        lambda c: analytics_reads.ratings(c, ask.who.store_id, activity, ask.window, ask.among)
    )
    body = metrics.feedback(activity, counts, ask.among.group_by, ask.min_group)
    return ask.respond(body, "groups", metrics.feedback_rows(body))


@router.get(
    "/feedback/learners",
    responses=_ERRORS,
    summary="Each participant's rating and comment (personal data: needs analytics/learners)",
)
async def feedback_learners(ask: LearnersAskDep, activity: Activity) -> Response:
    check_iri(activity, "activity")
    rows = await ask.read(
        lambda c: analytics_reads.progress(c, ask.who.store_id, activity, ask.window, ask.among)
    )
    return ask.respond({"activity": activity, "learners": metrics.feedback_learners(rows)}, "learners")


@router.get(
    "/learners",
    responses=_ERRORS,
    summary="Each learner's progress (personal data: needs analytics/learners)",
)
async def learners(ask: LearnersAskDep, activity: Activity) -> Response:
    check_iri(activity, "activity")
    rows = await ask.read(
        lambda c: analytics_reads.progress(c, ask.who.store_id, activity, ask.window, ask.among)
    )
    return ask.respond({"activity": activity, "learners": metrics.learners(rows)}, "learners")


@router.get("/activities", responses=_ERRORS, summary="Activities with their figures")
async def activities(
    ask: AskDep,
    sort: ActivitySort = "learners_started",
    order: Order = "desc",
    limit: Limit = 100,
    offset: Offset = 0,
) -> Response:
    store_id = ask.who.store_id
    summaries = await ask.activity_summaries()
    body = metrics.activities(summaries, sort, order == "desc", limit, offset, ask.min_group, ask.grouped)
    # Names only for the page shown: decoding every definition would cost the most.
    page = {row["activity"] for row in body["activities"]}
    definitions = await analytics_reads.read(
        ask.app.db, lambda c: analytics_reads.activity_names(c, store_id, page), ask.who.key
    )
    names = names_in(ask.request, definitions)
    for row in body["activities"]:
        row["name"] = names.get(row["activity"])
    return ask.respond(body, "activities")
