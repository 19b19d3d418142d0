"""The analytics read side: the queries behind `/analytics`, over the rollups only.

The per-learner figures of a set of activities (all time, or added up over a window) are one
subquery, ``_per_learner``; the questions that aggregate them include it whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from lrs.analytics.rollup import OVERALL
from lrs.store.activities import get_many as definitions
from lrs.store.keys import analytics_key as _key
from lrs.store.statements import consistent_through


@dataclass(frozen=True)
class Window:
    since: datetime | None
    until: datetime | None

    @property
    def unbounded(self) -> bool:
        return self.since is None and self.until is None


def _window_sql(window: Window, params: dict[str, Any]) -> str:
    clauses = []
    if window.since is not None:
        clauses.append("hour >= :since")
        params["since"] = window.since
    if window.until is not None:
        clauses.append("hour < :until")
        params["until"] = window.until
    return "".join(f" AND {c}" for c in clauses)


@dataclass(frozen=True)
class LearnerProgress:
    learner: str
    name: str | None
    first_at: datetime
    last_at: datetime
    completed_at: datetime | None
    passed: bool
    failed: bool
    best_score: float | None
    duration: float


def _per_learner(
    store_id: int, activities: list[str], window: Window, group_by: str | None, params: dict[str, Any]
) -> str:
    """SQL for each learner's progress on each of the activities within the window.

    Over all time this is one progress row per learner; within a window, the learner's
    hourly rows added up. Names and groups come from the learner's latest statement on the
    activity (whatever the window). Only the one grouping value asked for is read, as text,
    so a large course costs no JSON decoding per learner.
    """
    params.update(store=store_id, activities=[_key(a) for a in activities])
    value = "NULL::text"
    if group_by is not None:
        if group_by.startswith("extension:"):
            params["ext"] = group_by.removeprefix("extension:")
            value = "groups -> 'ext' ->> :ext"
        else:
            params["group"] = group_by
            value = "groups ->> :group"
    if window.unbounded:
        return f"""
        SELECT activity_key, activity_id, learner, learner_name AS name, first_at, last_at,
               completed_at, passed, failed, best_score, duration_seconds AS duration,
               {value} AS grp
          FROM analytics_progress
         WHERE store_id = :store AND activity_key = ANY(CAST(:activities AS text[]))"""
    return f"""
        SELECT w.activity_key, p.activity_id, p.learner, p.learner_name AS name, w.first_at,
               w.last_at, w.completed_at, w.passed, w.failed, w.best_score, w.duration,
               {value} AS grp
          FROM (SELECT activity_key, learner_key, min(first_at) AS first_at,
                       max(last_at) AS last_at, min(completed_at) AS completed_at,
                       bool_or(passed) AS passed, bool_or(failed) AS failed,
                       max(best_score) AS best_score, sum(duration_seconds) AS duration
                  FROM analytics_hourly
                 WHERE store_id = :store AND activity_key = ANY(CAST(:activities AS text[]))
                       {_window_sql(window, params)}
                 GROUP BY activity_key, learner_key) AS w
          JOIN analytics_progress p ON p.store_id = :store AND p.activity_key = w.activity_key
                                   AND p.learner_key = w.learner_key"""


async def progress(
    conn: AsyncConnection, store_id: int, activity: str, window: Window
) -> list[LearnerProgress]:
    """Each learner's progress on an activity within the window."""
    params: dict[str, Any] = {}
    rows = await conn.execute(text(_per_learner(store_id, [activity], window, None, params)), params)
    return [
        LearnerProgress(
            r.learner,
            r.name,
            r.first_at,
            r.last_at,
            r.completed_at,
            r.passed,
            r.failed,
            r.best_score,
            float(r.duration),
        )
        for r in rows
    ]


@dataclass(frozen=True)
class GroupFigures:
    """Completion figures of one group of learners on an activity (None: no such figure)."""

    group: Any
    started: int
    completed: int
    passed: int
    failed: int  # and never passed
    scores: int
    score_mean: float | None
    score_quartiles: tuple[float | None, float | None, float | None]
    time_total: float
    time_mean: float | None
    time_median: float | None
    time_to_complete_median: float | None


async def completion(
    conn: AsyncConnection, store_id: int, activity: str, window: Window, group_by: str | None
) -> list[GroupFigures]:
    """Completion figures per group, computed where the rows are, so that a course with
    thousands of learners sends back one row per group."""
    params: dict[str, Any] = {}
    learners = _per_learner(store_id, [activity], window, group_by, params)
    rows = await conn.execute(
        text(f"""
        SELECT grp, count(*) AS started, count(completed_at) AS completed,
               count(*) FILTER (WHERE passed) AS passed,
               count(*) FILTER (WHERE failed AND NOT passed) AS failed,
               count(best_score) AS scores, avg(best_score) AS score_mean,
               percentile_cont(ARRAY[0.25, 0.5, 0.75]) WITHIN GROUP (ORDER BY best_score)
                   AS score_quartiles,
               COALESCE(sum(duration) FILTER (WHERE duration > 0), 0) AS time_total,
               avg(duration) FILTER (WHERE duration > 0) AS time_mean,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY duration)
                   FILTER (WHERE duration > 0) AS time_median,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM completed_at - first_at))
                   AS time_to_complete_median
          FROM ({learners}) AS learners
         GROUP BY grp
    """),
        params,
    )
    return [
        GroupFigures(
            r.grp,
            r.started,
            r.completed,
            r.passed,
            r.failed,
            r.scores,
            r.score_mean,
            tuple(r.score_quartiles) if r.scores else (None, None, None),  # type: ignore[arg-type]
            float(r.time_total),
            r.time_mean,
            r.time_median,
            None if r.time_to_complete_median is None else float(r.time_to_complete_median),
        )
        for r in rows
    ]


@dataclass(frozen=True)
class Reach:
    """How many learners reached a child activity, completed it, and how long after their own
    start on the parent they typically first reached it (median, seconds)."""

    activity: str
    learners: int
    completed: int
    median_offset: float


async def reach(
    conn: AsyncConnection, store_id: int, parent: str, children: list[str], window: Window
) -> list[Reach]:
    """Each child's reach. Learners start on different days, so a child's place in the course
    is measured from each learner's own first statement in the parent's scope, never from
    absolute times taken over different sets of learners."""
    if not children:
        return []
    params: dict[str, Any] = {"parent": _key(parent)}
    learners = _per_learner(store_id, [parent, *children], window, None, params)
    rows = await conn.execute(
        text(f"""
        WITH learners AS ({learners})
        SELECT min(c.activity_id) AS activity, count(*) AS learners,
               count(c.completed_at) AS completed,
               percentile_cont(0.5) WITHIN GROUP (
                   ORDER BY extract(epoch FROM c.first_at - coalesce(p.first_at, c.first_at))
               ) AS median_offset
          FROM learners c
          LEFT JOIN learners p ON p.activity_key = :parent AND p.learner = c.learner
         WHERE c.activity_key <> :parent
         GROUP BY c.activity_key
    """),
        params,
    )
    return [Reach(r.activity, r.learners, r.completed, float(r.median_offset)) for r in rows]


@dataclass(frozen=True)
class Period:
    start: datetime
    active_learners: int
    statements: int
    completions: int
    duration: float


async def engagement(
    conn: AsyncConnection, store_id: int, activity: str | None, interval: str, tz: str, window: Window
) -> list[Period]:
    if (
        activity is None
        and _whole_periods(window, interval, tz)
        and await recorded_zone(conn, store_id) == tz
    ):
        return await _stored_periods(conn, store_id, interval, tz, window)
    params: dict[str, Any] = {
        "store": store_id,
        "activity": _key(activity or OVERALL),
        "interval": interval,
        "tz": tz,
    }
    rows = await conn.execute(
        text(f"""
        SELECT date_trunc(:interval, hour AT TIME ZONE :tz) AS period,
               count(DISTINCT learner_key) AS learners, sum(statements) AS statements,
               sum(completions) AS completions, sum(duration_seconds) AS duration
          FROM analytics_hourly
         WHERE store_id = :store AND activity_key = :activity{_window_sql(window, params)}
         GROUP BY 1 ORDER BY 1
    """),
        params,
    )
    return [
        Period(r.period, r.learners, int(r.statements), int(r.completions), float(r.duration)) for r in rows
    ]


def _whole_periods(window: Window, interval: str, tz: str) -> bool:
    """Whether since and until fall on period starts in ``tz`` (or are not given)."""
    zone = ZoneInfo(tz)
    for bound in (window.since, window.until):
        if bound is None:
            continue
        local = bound.astimezone(zone)
        if local.time() != time(0) or (interval == "week" and local.weekday() != 0):
            return False
        if interval == "month" and local.day != 1:
            return False
    return True


async def _stored_periods(
    conn: AsyncConnection, store_id: int, interval: str, tz: str, window: Window
) -> list[Period]:
    """Store-wide periods from the period figures kept on write."""
    params: dict[str, Any] = {"store": store_id, "kind": interval, "tz": tz}
    bounds = ""
    if window.since is not None:
        bounds += " AND period >= analytics_period_of(:kind, CAST(:since AS timestamptz) AT TIME ZONE :tz)"
        params["since"] = window.since
    if window.until is not None:
        bounds += " AND period < analytics_period_of(:kind, CAST(:until AS timestamptz) AT TIME ZONE :tz)"
        params["until"] = window.until
    rows = await conn.execute(
        text(f"""
        SELECT analytics_period_start(:kind, period)::timestamp AS period, learners, statements,
               completions, duration_seconds
          FROM analytics_period
         WHERE store_id = :store AND kind = :kind AND learners > 0{bounds}
         ORDER BY period
    """),
        params,
    )
    return [
        Period(r.period, r.learners, int(r.statements), int(r.completions), float(r.duration_seconds))
        for r in rows
    ]


@dataclass(frozen=True)
class Cell:
    weekday: int
    hour: int
    statements: int
    active_learners: int


async def hours(
    conn: AsyncConnection, store_id: int, activity: str | None, tz: str, window: Window
) -> list[Cell]:
    if activity is None and window.unbounded and await recorded_zone(conn, store_id) == tz:
        stored = await conn.execute(
            text(
                "SELECT period, statements, learners FROM analytics_period"
                " WHERE store_id = :store AND kind = 'cell' AND learners > 0"
            ),
            {"store": store_id},
        )
        return [Cell(r.period // 24, r.period % 24, int(r.statements), r.learners) for r in stored]
    params: dict[str, Any] = {"store": store_id, "activity": _key(activity or OVERALL), "tz": tz}
    rows = await conn.execute(
        text(f"""
        SELECT extract(isodow FROM hour AT TIME ZONE :tz)::int - 1 AS weekday,
               extract(hour FROM hour AT TIME ZONE :tz)::int AS hour_of_day,
               sum(statements) AS statements, count(DISTINCT learner_key) AS learners
          FROM analytics_hourly
         WHERE store_id = :store AND activity_key = :activity{_window_sql(window, params)}
         GROUP BY 1, 2
    """),
        params,
    )
    return [Cell(r.weekday, r.hour_of_day, int(r.statements), r.learners) for r in rows]


async def child_activities(conn: AsyncConnection, store_id: int, parent: str) -> list[str]:
    rows = await conn.execute(
        text(
            "SELECT child_id FROM analytics_children WHERE store_id = :store"
            " AND parent_key = :parent ORDER BY child_id"
        ),
        {"store": store_id, "parent": _key(parent)},
    )
    return [r.child_id for r in rows]


@dataclass(frozen=True)
class ActivitySummary:
    activity: str
    learners_started: int
    learners_completed: int
    duration: float


async def activity_summaries(conn: AsyncConnection, store_id: int, window: Window) -> list[ActivitySummary]:
    if window.unbounded:
        stored = await conn.execute(
            text(
                "SELECT activity_id, learners_started, learners_completed, duration_seconds"
                " FROM analytics_activity WHERE store_id = :store AND learners_started > 0"
            ),
            {"store": store_id},
        )
        return [
            ActivitySummary(
                r.activity_id, r.learners_started, r.learners_completed, float(r.duration_seconds)
            )
            for r in stored
        ]
    params: dict[str, Any] = {"store": store_id, "overall": OVERALL}
    rows = await conn.execute(
        text(f"""
        SELECT a.activity_id, w.started, w.completed, w.duration
          FROM (SELECT activity_key, count(*) AS started,
                       count(*) FILTER (WHERE completed) AS completed, sum(duration) AS duration
                  FROM (SELECT activity_key, learner_key,
                               bool_or(completed_at IS NOT NULL) AS completed,
                               sum(duration_seconds) AS duration
                          FROM analytics_hourly
                         WHERE store_id = :store AND activity_key <> :overall
                               {_window_sql(window, params)}
                         GROUP BY activity_key, learner_key) AS per_learner
                 GROUP BY activity_key) AS w
          JOIN analytics_activity a ON a.store_id = :store AND a.activity_key = w.activity_key
    """),
        params,
    )
    return [ActivitySummary(r.activity_id, r.started, r.completed, float(r.duration)) for r in rows]


async def recorded_zone(conn: AsyncConnection, store_id: int) -> str | None:
    """The zone the store's period figures are kept in (None before its first write)."""
    return (
        await conn.execute(text("SELECT zone FROM analytics_zone WHERE store_id = :s"), {"s": store_id})
    ).scalar()


async def as_of(conn: AsyncConnection, store_id: int) -> datetime:
    """The stored time the store's figures are exact up to: every statement stored before
    it is counted. Statements wait in the rollup queue until the worker folds them, and a
    transaction still open may yet store statements stamped with its start."""
    waiting: datetime | None = (
        await conn.execute(text("SELECT min(stored) FROM rollup_queue WHERE store_id = :s"), {"s": store_id})
    ).scalar_one()
    through = await consistent_through(conn)
    return through if waiting is None else min(waiting, through)


@dataclass(frozen=True)
class Backlog:
    """What the worker has still to fold, installation-wide."""

    transactions: int
    statements: int
    oldest: datetime | None
    now: datetime


async def backlog(conn: AsyncConnection) -> Backlog:
    row = (
        await conn.execute(
            text(
                "SELECT count(*) AS n, coalesce(sum(cardinality(seqs)), 0) AS statements,"
                " min(stored) AS oldest, clock_timestamp() AS now FROM rollup_queue"
            )
        )
    ).one()
    return Backlog(row.n, int(row.statements), row.oldest, row.now)


async def activity_names(
    conn: AsyncConnection, store_id: int, activities: set[str]
) -> dict[str, dict[str, str]]:
    """Each activity's name (a language map): the canonical definition's, else the one its
    statements last gave it; activities never named are left out."""
    carried = await conn.execute(
        text(
            "SELECT activity_id, name FROM analytics_names"
            " WHERE store_id = :s AND activity_key = ANY(CAST(:keys AS text[]))"
        ),
        {"s": store_id, "keys": [_key(a) for a in activities]},
    )
    found: dict[str, dict[str, str]] = {r.activity_id: r.name for r in carried}
    for activity, definition in (await definitions(conn, store_id, activities)).items():
        if definition.get("name"):
            found[activity] = definition["name"]
    return found
