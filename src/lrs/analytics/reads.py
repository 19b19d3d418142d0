"""The analytics read side: the queries behind `/analytics`, over the rollups only.

The per-learner figures of a set of activities (all time, or added up over a window) are one
subquery, ``_per_learner``; the questions that aggregate them include it whole.
"""

from __future__ import annotations

import asyncio
import heapq
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from functools import partial
from typing import Any, Generic, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from lrs.analytics.rollup import OVERALL, HourKey, LearnerKey
from lrs.store import cohorts as cohort_store
from lrs.store import costs
from lrs.store.activities import get_many as definitions
from lrs.store.cohorts import Assignment
from lrs.store.costs import Cost as Cost
from lrs.store.database import Database
from lrs.store.database import now as now
from lrs.store.keys import OVERALL_KEY
from lrs.store.keys import analytics_key as _key
from lrs.store.statements import consistent_through

T = TypeVar("T")


async def read(db: Database, work: Callable[[AsyncConnection], Awaitable[T]], reader: str) -> T:
    """Run analytics reads in one transaction (on a replica when one may answer ``reader``),
    each query planned for the values it is given.

    Statements are prepared and kept per connection, and after five runs PostgreSQL may
    switch to a plan made without the values. For these queries that plan guesses one row
    for every CTE and window, and the nested loops it then picks cost seconds where the
    values' own plan costs tens of milliseconds (bench.leaders: a course's elements over a
    month, 1 s against 0.1 s). Planning each time costs a millisecond or two."""

    async def planned(conn: AsyncConnection) -> T:
        await conn.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
        return await work(conn)

    return await db.read(planned, reader=reader)


@dataclass(frozen=True)
class Window:
    since: datetime | None
    until: datetime | None

    @property
    def unbounded(self) -> bool:
        return self.since is None and self.until is None


def _window_sql(window: Window, params: dict[str, Any], column: str = "hour", name: str = "") -> str:
    """SQL keeping ``column`` in the window; ``name`` tells its parameters apart from another
    window's in the same query."""
    clauses = []
    if window.since is not None:
        clauses.append(f"{column} >= :since{name}")
        params[f"since{name}"] = window.since
    if window.until is not None:
        clauses.append(f"{column} < :until{name}")
        params[f"until{name}"] = window.until
    return "".join(f" AND {c}" for c in clauses)


@dataclass(frozen=True)
class Among:
    """Whose figures, and how they are grouped: by ``group_by`` (a value the learner's latest
    statement gives, or ``cohort``), and only learners in ``cohort`` (with the cohorts inside
    it). Cohort membership is the one at the window's end (or now)."""

    group_by: str | None = None
    cohort: str | None = None

    @property
    def plain(self) -> bool:
        return self.group_by is None and self.cohort is None


EVERYONE = Among()

# Cohorts whose members are counted: every cohort, the one named, or it and those inside it.
_ALL_COHORTS = "SELECT id FROM cohorts WHERE store_id = :store"
_THE_COHORT = "SELECT id FROM cohorts WHERE store_id = :store AND name = :cohort"
_INSIDE_COHORT = """
    WITH RECURSIVE inside (id) AS (
        SELECT id FROM cohorts WHERE store_id = :store AND name = :cohort
        UNION ALL
        SELECT c.id FROM cohorts c JOIN inside i ON c.store_id = :store AND c.parent_id = i.id
    ) SELECT id FROM inside"""
_ASSIGNED_COHORTS = (
    "SELECT cohort_id FROM cohort_assignments"
    " WHERE store_id = :store AND activity_key = ANY(CAST(:assigned AS uuid[]))"
)


# A membership in force at the window's end (or now); `m` is a cohort_members row.
_VALID_AT = (
    "m.valid_from <= COALESCE(CAST(:at AS timestamptz), now())"
    " AND (m.valid_to IS NULL OR m.valid_to > COALESCE(CAST(:at AS timestamptz), now()))"
)


def _tree(name: str, tops: str) -> str:
    """A CTE ``name (top, id)``: each cohort ``tops`` selects, over itself and every cohort
    inside it (for WITH RECURSIVE)."""
    return f"""{name} (top, id) AS (
            SELECT id, id FROM cohorts WHERE store_id = :store AND id IN ({tops})
            UNION ALL
            SELECT t.top, c.id FROM {name} t JOIN cohorts c ON c.store_id = :store AND c.parent_id = t.id)"""


def _members(window: Window, tops: str, params: dict[str, Any]) -> str:
    """SQL for (cohort, learner_key): the members of each cohort ``tops`` selects, counting
    those of every cohort inside it, at the window's end (or now). For figures over many
    rows per learner (hourly), which join it whole."""
    params["at"] = window.until
    return f"""
        WITH RECURSIVE {_tree("tree", tops)}
        SELECT DISTINCT n.name AS cohort, m.learner_key
          FROM tree t JOIN cohort_members m ON m.store_id = :store AND m.cohort_id = t.id
          JOIN cohorts n ON n.store_id = :store AND n.id = t.top
         WHERE {_VALID_AT}"""


def _memberships(learners: str, tree: str) -> str:
    """SQL for (top, learner_key): which cohorts of ``tree`` each learner of the CTE
    ``learners`` is in. Set-based, and sized by those learners, not the store's members."""
    return f"""
            SELECT t.top, m.learner_key
              FROM cohort_members m JOIN {tree} t ON t.id = m.cohort_id
             WHERE m.store_id = :store AND {_VALID_AT}
               AND m.learner_key IN (SELECT learner_key FROM {learners})
             GROUP BY t.top, m.learner_key"""


def _members_of(tree: str) -> str:
    """SQL for the learners in the cohorts of ``tree`` (read through each cohort's rows)."""
    return f"""
            SELECT DISTINCT m.learner_key
              FROM {tree} t JOIN cohort_members m ON m.store_id = :store AND m.cohort_id = t.id
             WHERE {_VALID_AT}"""


def _by_cohort(
    among: Among, window: Window, learners: str, params: dict[str, Any]
) -> tuple[list[str], str, str, str]:
    """(CTEs, joins, condition, group) SQL that narrows rows of the CTE ``learners`` (alias
    ``b``) to the cohort asked for and, grouped by cohort, repeats each for every cohort the
    learner is in (``group``: the cohort's name; learners in none: NULL)."""
    params["at"] = window.until
    ctes: list[str] = []
    join = where = ""
    group = "NULL::text"
    if among.cohort is not None:
        params["cohort"] = among.cohort
    if among.group_by == "cohort":
        ctes.append(_tree("grouping", _ALL_COHORTS if among.cohort is None else _INSIDE_COHORT))
        ctes.append(f"memberships AS MATERIALIZED ({_memberships(learners, 'grouping')})")
        kind = "LEFT JOIN" if among.cohort is None else "JOIN"
        join = (
            f" {kind} memberships g ON g.learner_key = b.learner_key"
            " LEFT JOIN cohorts n ON n.store_id = :store AND n.id = g.top"
        )
        group = "n.name"
    elif among.cohort is not None:
        ctes.append(_tree("within", _THE_COHORT))
        ctes.append(f"within_members AS MATERIALIZED ({_members_of('within')})")
        where = " AND b.learner_key IN (SELECT learner_key FROM within_members)"
    return ctes, join, where, group


async def _hash_joins(conn: AsyncConnection, among: Among | None = None) -> None:
    """Keep PostgreSQL from nested loops for the rest of this read when cohorts are joined.

    Cohort membership is replaced in bulk by HR syncs, so its statistics are often stale,
    and CTE sizes are guesses: with one-row estimates the planner loops over thousands of
    members for each of thousands of learners (seconds). Hash joins cost these sizes
    milliseconds, whatever the estimates."""
    if among is None or among.group_by == "cohort" or among.cohort is not None:
        await conn.execute(text("SET LOCAL enable_nestloop = off"))


def _group_value(group_by: str | None, params: dict[str, Any], column: str = "groups") -> str:
    """SQL for the one grouping value asked for, read as text from a progress row's groups."""
    if group_by is None or group_by == "cohort":
        return "NULL::text"
    if group_by.startswith("extension:"):
        params["ext"] = group_by.removeprefix("extension:")
        return f"{column} -> 'ext' ->> :ext"
    params["group"] = group_by
    return f"{column} ->> :group"


def _learner_group(group_by: str | None, params: dict[str, Any], table: str) -> str:
    """SQL for a progress row's group: its store (in a region), or a value its groups give."""
    if group_by == "store":
        return f"{table}store_id::text"
    return _group_value(group_by, params, f"{table}groups")


def _among(
    join_key: str, filter_key: str, window: Window, among: Among, params: dict[str, Any]
) -> tuple[str, str, str]:
    """(join, condition, group) SQL for rows with many per learner (hourly, every activity's
    progress): the condition keeps the learners of the cohort asked for (on ``filter_key``),
    the join repeats each row for every cohort its learner is in (on ``join_key``)."""
    join = where = ""
    group = "NULL::text"
    if among.cohort is not None:
        params["cohort"] = among.cohort
    if among.group_by == "cohort":
        tops = _ALL_COHORTS if among.cohort is None else _INSIDE_COHORT
        kind = "LEFT JOIN" if among.cohort is None else "JOIN"
        join = f" {kind} ({_members(window, tops, params)}) g ON g.learner_key = {join_key}"
        group = "g.cohort"
    elif among.cohort is not None:
        where = f" AND {filter_key} IN (SELECT learner_key FROM ({_members(window, _THE_COHORT, params)}) f)"
    return join, where, group


_PROGRESS_COLUMNS = (
    "store_id, activity_key, activity_id, learner_key, learner, name, first_at, last_at, completed_at,"
    " passed, failed, best_score, duration, sessions, abandoned, rating_at, rating_scaled, rating_raw,"
    " rating_min, rating_max, rating_response"
)


def _per_learner(
    store_id: int | list[int], activities: list[str], window: Window, among: Among, params: dict[str, Any]
) -> str:
    """SQL for each learner's progress on each of the activities within the window, with the
    group asked for (``grp``).

    Over all time this is one progress row per learner; within a window, the learner's
    hourly rows added up, with their latest rating if they gave it in the window. Names and
    groups come from the learner's latest statement on the activity (whatever the window).
    Only the one grouping value asked for is read, as text, so a large course costs no JSON
    decoding per learner. Grouped by cohort, a learner counts in each cohort they are in.

    Given several stores (a region), the rows are those of each store's own index range
    (a learner in two stores is two rows), each with its ``store_id``; ``group_by="store"``
    groups by it. Cohorts belong to one store, so they group one store's learners only.
    """
    params["activities"] = [_key(a) for a in activities]
    if isinstance(store_id, list):
        assert among.group_by != "cohort" and among.cohort is None, "cohorts are one store's"
        params["stores"] = store_id
        stores = "store_id = ANY(CAST(:stores AS bigint[]))"
    else:
        params["store"] = store_id
        stores = "store_id = :store"
    if window.unbounded:
        value = _learner_group(among.group_by, params, "")
        base = f"""
        SELECT store_id, activity_key, activity_id, learner_key, learner, learner_name AS name,
               first_at, last_at, completed_at, passed, failed, best_score,
               duration_seconds AS duration, sessions, abandoned, rating_at, rating_scaled,
               rating_raw, rating_min, rating_max, rating_response, {value} AS grp
          FROM analytics_progress
         WHERE {stores} AND activity_key = ANY(CAST(:activities AS uuid[]))"""
    else:
        rated = "p.rating_at IS NOT NULL" + _window_sql(window, params, "p.rating_at")
        base = f"""
        SELECT w.store_id, w.activity_key, p.activity_id, w.learner_key, p.learner,
               p.learner_name AS name, w.first_at, w.last_at, w.completed_at, w.passed, w.failed,
               w.best_score, w.duration, w.sessions, w.abandoned,
               CASE WHEN {rated} THEN p.rating_at END AS rating_at,
               CASE WHEN {rated} THEN p.rating_scaled END AS rating_scaled,
               CASE WHEN {rated} THEN p.rating_raw END AS rating_raw,
               CASE WHEN {rated} THEN p.rating_min END AS rating_min,
               CASE WHEN {rated} THEN p.rating_max END AS rating_max,
               CASE WHEN {rated} THEN p.rating_response END AS rating_response,
               {_learner_group(among.group_by, params, "p.")} AS grp
          FROM (SELECT store_id, activity_key, learner_key, min(first_at) AS first_at,
                       max(last_at) AS last_at, min(completed_at) AS completed_at,
                       bool_or(passed) AS passed, bool_or(failed) AS failed,
                       max(best_score) AS best_score, sum(duration_seconds) AS duration,
                       sum(sessions) AS sessions, sum(abandoned) AS abandoned
                  FROM analytics_hourly
                 WHERE {stores} AND activity_key = ANY(CAST(:activities AS uuid[]))
                       {_window_sql(window, params)}
                 GROUP BY store_id, activity_key, learner_key) AS w
          JOIN analytics_progress p ON p.store_id = w.store_id AND p.activity_key = w.activity_key
                                   AND p.learner_key = w.learner_key
         -- Implied by the join, but said: with nested loops off (cohorts), the hash join
         -- then reads the asked activities' progress rows, not the whole store's.
         WHERE p.{stores} AND p.activity_key = ANY(CAST(:activities AS uuid[]))"""
    if among.group_by != "cohort" and among.cohort is None:
        return base
    ctes, join, where, group = _by_cohort(among, window, "learners", params)
    if among.group_by != "cohort":
        group = "b.grp"
    return f"""WITH RECURSIVE learners AS MATERIALIZED ({base}), {", ".join(ctes)}
        SELECT {_prefixed("b", _PROGRESS_COLUMNS)}, {group} AS grp
          FROM learners b{join} WHERE true{where}"""


def _prefixed(alias: str, columns: str) -> str:
    return ", ".join(f"{alias}.{c.strip()}" for c in columns.split(","))


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
    rating: Rated | None = None


@dataclass(frozen=True)
class Rated:
    """A learner's rating as kept (see analytics.rollup.Rating)."""

    at: datetime
    scaled: float | None
    raw: float | None
    min: float | None
    max: float | None
    response: str | None


def _learner_progress(r: Any) -> LearnerProgress:
    rated = None
    if r.rating_at is not None:
        rated = Rated(
            r.rating_at, r.rating_scaled, r.rating_raw, r.rating_min, r.rating_max, r.rating_response
        )
    return LearnerProgress(
        r.learner,
        r.name,
        r.first_at,
        r.last_at,
        r.completed_at,
        r.passed,
        r.failed,
        r.best_score,
        float(r.duration),
        rated,
    )


async def progress(
    conn: AsyncConnection, store_id: int, activity: str, window: Window, among: Among = EVERYONE
) -> list[LearnerProgress]:
    """Each learner's progress on an activity within the window (once each, however they
    are grouped)."""
    await _hash_joins(conn, among)
    params: dict[str, Any] = {}
    rows = await conn.execute(
        text(
            "SELECT DISTINCT ON (learner_key) * FROM"
            f" ({_per_learner(store_id, [activity], window, among, params)}) x"
        ),
        params,
    )
    return [_learner_progress(r) for r in rows]


SCORE_BINS = 10  # scores are counted per tenth of the scaled score


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
    sessions: int = 0
    abandoned: int = 0
    score_bins: tuple[int, ...] = (0,) * (SCORE_BINS + 1)  # below zero, then each tenth


NO_FIGURES = GroupFigures(None, 0, 0, 0, 0, 0, None, (None, None, None), 0.0, None, None, None)

# The completion figures of a set of learner rows (`learners`), grouped by `grp`.
_FIGURES = """
       count(*) AS started, count(completed_at) AS completed,
       count(*) FILTER (WHERE passed) AS passed,
       count(*) FILTER (WHERE failed AND NOT passed) AS failed,
       count(best_score) AS scores, avg(best_score) AS score_mean,
       percentile_cont(ARRAY[0.25, 0.5, 0.75]) WITHIN GROUP (ORDER BY best_score) AS score_quartiles,
       COALESCE(sum(duration) FILTER (WHERE duration > 0), 0) AS time_total,
       avg(duration) FILTER (WHERE duration > 0) AS time_mean,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY duration) FILTER (WHERE duration > 0) AS time_median,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM completed_at - first_at))
           AS time_to_complete_median,
       COALESCE(sum(sessions), 0) AS sessions, COALESCE(sum(abandoned), 0) AS abandoned,
       ARRAY[{}] AS score_bins""".format(
    # Learners per tenth of the scaled score (1.0 in the top tenth), after those below zero.
    # (width_bucket gives 0 below the range and 11 for 1.0.)
    ", ".join(
        f"count(*) FILTER (WHERE width_bucket(best_score, 0, 1, {SCORE_BINS})"
        f" {'>=' if b == SCORE_BINS else '='} {b})"
        for b in range(SCORE_BINS + 1)
    )
)


def _group_figures(r: Any) -> GroupFigures:
    return GroupFigures(
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
        int(r.sessions),
        int(r.abandoned),
        tuple(r.score_bins),
    )


async def completion(
    conn: AsyncConnection, store_id: int, activity: str, window: Window, among: Among
) -> list[GroupFigures]:
    """Completion figures per group, computed where the rows are, so that a course with
    thousands of learners sends back one row per group."""
    await _hash_joins(conn, among)
    params: dict[str, Any] = {}
    learners = _per_learner(store_id, [activity], window, among, params)
    rows = await conn.execute(
        text(f"SELECT grp, {_FIGURES} FROM ({learners}) AS learners GROUP BY grp"), params
    )
    return [_group_figures(r) for r in rows]


@dataclass(frozen=True)
class AssignmentFigures:
    """Of the learners assigned an activity, in one group: how many have done what."""

    activity: str
    group: Any
    due: datetime | None  # the group's own due date, when the group is an assigned cohort
    assigned: int
    not_started: int
    in_progress: int
    completed: int
    passed: int
    failed: int
    overdue: int
    completed_late: int
    figures: GroupFigures  # /analytics/completion's figures over those who started


def _assigned(
    store_id: int, activities: list[str], window: Window, among: Among, params: dict[str, Any]
) -> str:
    """SQL for each assigned learner's row per activity and group: the activity
    (``assigned_key``), the learner, their earliest due date,
    their progress (NULLs: not started), ``grp`` and the group's ``cohort_id`` (when the
    group is a cohort).

    A learner is assigned the activity when they are (at the window's end, or now) a member
    of a cohort assigned it, or of a cohort inside one. Without ``group_by`` the groups are
    the assigned cohorts (or the cohort asked for); grouped by cohort, every cohort a learner
    is in; grouped otherwise, the value the learner's latest statement gives (none before
    they start).
    """
    params.update(assigned=[_key(a) for a in activities], at=window.until)
    progress = _per_learner(
        store_id, activities, window, Among(among.group_by if among.group_by != "cohort" else None), params
    )
    ctes = [_tree("assigned_tree", _ASSIGNED_COHORTS)]
    if among.cohort is not None:
        params["cohort"] = among.cohort
    groups = ""
    if among.group_by == "cohort":
        ctes.append(_tree("grouping", _ALL_COHORTS if among.cohort is None else _INSIDE_COHORT))
        groups = (
            f" JOIN ({_memberships('assigned', 'grouping')}) g ON g.learner_key = a.learner_key"
            " JOIN cohorts n ON n.store_id = :store AND n.id = g.top"
        )
        group, cohort_id = "n.name", "n.id"
    elif among.group_by is None and among.cohort is None:
        groups = " JOIN assigned_members g ON g.learner_key = a.learner_key"
        groups += " JOIN cohorts n ON n.store_id = :store AND n.id = g.cohort_id"
        group, cohort_id = "n.name", "n.id"
    else:
        group, cohort_id = (
            ("p.grp", "NULL::bigint") if among.group_by else ("CAST(:cohort AS text)", "NULL::bigint")
        )
        if among.cohort is not None:
            ctes.append(_tree("within", _THE_COHORT))
            groups = f" WHERE a.learner_key IN ({_members_of('within')})"
            if among.group_by is None:
                cohort_id = "(SELECT id FROM cohorts WHERE store_id = :store AND name = :cohort)"
    return f"""
        WITH RECURSIVE {", ".join(ctes)},
        assigned_members AS MATERIALIZED (
            SELECT DISTINCT t.top AS cohort_id, m.learner_key, m.learner, m.name
              FROM assigned_tree t JOIN cohort_members m ON m.store_id = :store AND m.cohort_id = t.id
             WHERE {_VALID_AT}
        ),
        assigned AS MATERIALIZED (
            SELECT a.activity_key, m.learner_key, min(m.learner) AS learner, min(m.name) AS name,
                   min(a.due) AS due
              FROM assigned_members m
              JOIN cohort_assignments a ON a.store_id = :store AND a.cohort_id = m.cohort_id
                                       AND a.activity_key = ANY(CAST(:assigned AS uuid[]))
             GROUP BY a.activity_key, m.learner_key
        )
        SELECT a.activity_key AS assigned_key, {group} AS grp, {cohort_id} AS cohort_id, a.learner_key,
               a.learner, a.name, a.due,
               {_prefixed("p", _PROGRESS_COLUMNS.replace("learner_key, learner, name, ", ""))}
          FROM assigned a
          LEFT JOIN ({progress}) p ON p.learner_key = a.learner_key
                                  AND p.activity_key = a.activity_key{groups}"""


async def assignments(
    conn: AsyncConnection, store_id: int, activities: list[str], window: Window, among: Among
) -> list[AssignmentFigures]:
    """The assigned learners' figures per activity and group, for all the activities at once."""
    await _hash_joins(conn)
    params: dict[str, Any] = {}
    named = {_key(a): a for a in activities}
    rows = await conn.execute(
        text(f"""
        SELECT assigned_key, grp, min(d.due) AS own_due, count(*) AS assigned,
               count(*) FILTER (WHERE first_at IS NULL) AS not_started,
               count(*) FILTER (WHERE first_at IS NOT NULL AND completed_at IS NULL) AS in_progress,
               count(*) FILTER (WHERE completed_at IS NULL
                                  AND x.due < COALESCE(CAST(:at AS timestamptz), now())) AS overdue,
               count(*) FILTER (WHERE completed_at > x.due) AS completed_late,
               {_FIGURES.replace("count(*) AS started", "count(first_at) AS started")}
          FROM ({_assigned(store_id, activities, window, among, params)}) x
          LEFT JOIN cohort_assignments d ON d.store_id = :store AND d.cohort_id = x.cohort_id
                                       AND d.activity_key = x.assigned_key
         GROUP BY assigned_key, grp
        """),
        params,
    )
    return [
        AssignmentFigures(
            named[r.assigned_key],
            r.grp,
            r.own_due,
            r.assigned,
            r.not_started,
            r.in_progress,
            r.completed,
            r.passed,
            r.failed,
            r.overdue,
            r.completed_late,
            _group_figures(r),
        )
        for r in rows
    ]


@dataclass(frozen=True)
class AssignmentStatus:
    """One assignment at a glance: of the cohort's members (with the cohorts inside it),
    how many have completed the activity and how many are overdue."""

    cohort: str
    activity: str
    due: datetime | None
    assigned: int
    completed: int
    overdue: int


async def assignment_status(conn: AsyncConnection, store_id: int, window: Window) -> list[AssignmentStatus]:
    """Every assignment of the store at once, with the figures ``assignments`` gives per
    assigned cohort (assigned, completed, overdue), counted without pairing each member with
    each assignment: members are counted per cohort, completions are joined to the members
    they belong to, and a member is overdue when their earliest due date, through any
    assigned cohort, has passed without a completion."""
    await _hash_joins(conn)
    params: dict[str, Any] = {"store": store_id, "at": window.until}
    params["due_by"] = window.until or await now(conn)
    # The assigned activities as a list: their progress rows are then read by index, even
    # with nested loops off.
    params["keys"] = list(
        (
            await conn.execute(
                text("SELECT DISTINCT activity_key FROM cohort_assignments WHERE store_id = :store"),
                {"store": store_id},
            )
        ).scalars()
    )
    if window.unbounded:
        done = """
            SELECT activity_key, learner_key FROM analytics_progress
             WHERE store_id = :store AND activity_key = ANY(CAST(:keys AS uuid[]))
               AND completed_at IS NOT NULL"""
    else:
        done = f"""
            SELECT DISTINCT activity_key, learner_key FROM analytics_hourly
             WHERE store_id = :store AND activity_key = ANY(CAST(:keys AS uuid[]))
               AND completed_at IS NOT NULL{_window_sql(window, params)}"""
    all_assigned = "SELECT cohort_id FROM cohort_assignments WHERE store_id = :store"
    rows = await conn.execute(
        text(f"""
        WITH RECURSIVE {_tree("tree", all_assigned)},
        members AS MATERIALIZED (
            SELECT t.top AS cohort_id, m.learner_key
              FROM tree t JOIN cohort_members m ON m.store_id = :store AND m.cohort_id = t.id
             WHERE {_VALID_AT}
             GROUP BY t.top, m.learner_key
        ),
        sizes AS (SELECT cohort_id, count(*) AS assigned FROM members GROUP BY cohort_id),
        done AS MATERIALIZED ({done}),
        completed AS (
            SELECT a.cohort_id, a.activity_key, count(*) AS completed
              FROM done d JOIN members m ON m.learner_key = d.learner_key
              JOIN cohort_assignments a ON a.store_id = :store AND a.cohort_id = m.cohort_id
                                       AND a.activity_key = d.activity_key
             GROUP BY a.cohort_id, a.activity_key
        ),
        -- Members of an assignment not yet due who are overdue through another one.
        early AS (
            SELECT a.cohort_id, a.activity_key, count(DISTINCT m.learner_key) AS overdue
              FROM cohort_assignments a JOIN members m ON m.cohort_id = a.cohort_id
              JOIN cohort_assignments b ON b.store_id = :store AND b.activity_key = a.activity_key
                                       AND b.due < :due_by
              JOIN members mb ON mb.cohort_id = b.cohort_id AND mb.learner_key = m.learner_key
             WHERE a.store_id = :store AND (a.due IS NULL OR a.due >= :due_by)
               AND NOT EXISTS (SELECT FROM done d
                                WHERE d.activity_key = a.activity_key AND d.learner_key = m.learner_key)
             GROUP BY a.cohort_id, a.activity_key
        )
        SELECT n.name AS cohort, a.activity_id, a.due, s.assigned, COALESCE(c.completed, 0) AS completed,
               CASE WHEN a.due < :due_by
                    THEN s.assigned - COALESCE(c.completed, 0) ELSE COALESCE(e.overdue, 0) END AS overdue
          FROM cohort_assignments a
          JOIN cohorts n ON n.store_id = :store AND n.id = a.cohort_id
          JOIN sizes s ON s.cohort_id = a.cohort_id
          LEFT JOIN completed c ON c.cohort_id = a.cohort_id AND c.activity_key = a.activity_key
          LEFT JOIN early e ON e.cohort_id = a.cohort_id AND e.activity_key = a.activity_key
         WHERE a.store_id = :store
         ORDER BY n.name, a.activity_id
        """),
        params,
    )
    return [
        AssignmentStatus(r.cohort, r.activity_id, r.due, r.assigned, r.completed, r.overdue) for r in rows
    ]


async def assigned_totals(
    conn: AsyncConnection, store_id: int, activity: str, window: Window, cohort: str | None
) -> GroupFigures:
    """The completion figures of the assigned learners (in ``cohort``, if given), each once."""
    await _hash_joins(conn)
    params: dict[str, Any] = {}
    assigned = _assigned(store_id, [activity], window, Among(None, cohort), params)
    row = (
        await conn.execute(
            text(f"""
            SELECT NULL AS grp, {_FIGURES.replace("count(*) AS started", "count(first_at) AS started")}
              FROM (SELECT DISTINCT ON (learner_key) * FROM ({assigned}) a) x
            """),
            params,
        )
    ).one()
    return _group_figures(row)


@dataclass(frozen=True)
class AssignedLearner:
    learner: str
    name: str | None
    due: datetime | None
    progress: LearnerProgress | None  # None: not started


async def assigned_learners(
    conn: AsyncConnection, store_id: int, activity: str, window: Window, cohort: str | None
) -> list[AssignedLearner]:
    """Each learner assigned the activity (in ``cohort``, if given), once."""
    await _hash_joins(conn)
    params: dict[str, Any] = {}
    rows = await conn.execute(
        text(
            "SELECT DISTINCT ON (learner_key) * FROM"
            f" ({_assigned(store_id, [activity], window, Among(None, cohort), params)}) x"
            " ORDER BY learner_key"
        ),
        params,
    )
    out = []
    for r in rows:
        started = None
        if r.first_at is not None:
            started = _learner_progress(r)
        out.append(AssignedLearner(r.learner, r.name, r.due, started))
    return out


@dataclass(frozen=True)
class RatingCount:
    """How many learners of a group gave one raw value on one scale (raw None: no raw
    value), with the sum and count of their scaled ratings."""

    group: Any
    min: float | None
    max: float | None
    raw: float | None
    learners: int
    scaled_sum: float
    scaled_count: int


async def ratings(
    conn: AsyncConnection, store_id: int, activity: str, window: Window, among: Among
) -> list[RatingCount]:
    """Learners' latest ratings of the activity, counted per group, scale and raw value."""
    await _hash_joins(conn, among)
    params: dict[str, Any] = {}
    learners = _per_learner(store_id, [activity], window, among, params)
    rows = await conn.execute(
        text(f"""
        SELECT grp, rating_min, rating_max, rating_raw, count(*) AS learners,
               COALESCE(sum(rating_scaled), 0) AS scaled_sum, count(rating_scaled) AS scaled_count
          FROM ({learners}) AS learners
         WHERE rating_at IS NOT NULL
         GROUP BY grp, rating_min, rating_max, rating_raw
        """),
        params,
    )
    return [
        RatingCount(
            r.grp, r.rating_min, r.rating_max, r.rating_raw, r.learners, float(r.scaled_sum), r.scaled_count
        )
        for r in rows
    ]


@dataclass(frozen=True)
class Reach:
    """How many learners of a group reached a child activity, what they did there, and how
    long after their own start on the parent they typically first reached it (median,
    seconds)."""

    activity: str
    learners: int
    completed: int
    median_offset: float
    group: Any = None
    passed: int = 0
    failed: int = 0
    scores: int = 0
    score_mean: float | None = None
    score_median: float | None = None
    time_median: float | None = None
    ratings: int = 0
    rating_mean: float | None = None
    # In a region: how many of ``learners`` each member store gave.
    per_store: dict[int, int] = field(default_factory=dict, compare=False)


async def reach(
    conn: AsyncConnection,
    store_id: int | list[int],
    parent: str,
    children: list[str],
    window: Window,
    among: Among = EVERYONE,
) -> list[Reach]:
    """Each child's reach, per group. Learners start on different days, so a child's place
    in the course is measured from each learner's own first statement in the parent's
    scope, never from absolute times taken over different sets of learners."""
    if not children:
        return []
    await _hash_joins(conn, among)
    params: dict[str, Any] = {"parent": _key(parent)}
    learners = _per_learner(store_id, [parent, *children], window, among, params)
    # In a region, each store's share of every step too: the stores of its learners, counted
    # here (grouping by store in SQL as well would work out every figure a second time).
    # Only the columns used below: the CTE is kept in memory whole (a course across a region is
    # tens of thousands of rows, which with every column spilled to disk).
    result = await conn.execute(
        text(f"""
        WITH learners AS (
            SELECT store_id, activity_key, activity_id, learner_key, first_at, completed_at, passed,
                   failed, best_score, duration, rating_scaled, grp
              FROM ({learners}) b)
        SELECT c.grp, {"array_agg(c.store_id)" if isinstance(store_id, list) else "NULL"} AS stores,
               min(c.activity_id) AS activity, count(*) AS learners,
               count(c.completed_at) AS completed,
               count(*) FILTER (WHERE c.passed) AS passed,
               count(*) FILTER (WHERE c.failed AND NOT c.passed) AS failed,
               count(c.best_score) AS scores, avg(c.best_score) AS score_mean,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY c.best_score) AS score_median,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY c.duration)
                   FILTER (WHERE c.duration > 0) AS time_median,
               count(c.rating_scaled) AS ratings, avg(c.rating_scaled) AS rating_mean,
               percentile_cont(0.5) WITHIN GROUP (
                   ORDER BY extract(epoch FROM c.first_at - coalesce(p.first_at, c.first_at))
               ) AS median_offset
          FROM learners c
          LEFT JOIN (SELECT DISTINCT ON (store_id, learner_key) store_id, learner_key, first_at
                       FROM learners WHERE activity_key = :parent) p
                 ON p.store_id = c.store_id AND p.learner_key = c.learner_key
         WHERE c.activity_key <> :parent
         GROUP BY c.grp, c.activity_key
    """),
        params,
    )
    return [
        Reach(
            r.activity,
            r.learners,
            r.completed,
            float(r.median_offset),
            r.grp,
            r.passed,
            r.failed,
            r.scores,
            r.score_mean,
            r.score_median,
            r.time_median,
            r.ratings,
            r.rating_mean,
            dict(Counter(r.stores or ())),
        )
        for r in result
    ]


@dataclass(frozen=True)
class Period:
    start: datetime
    active_learners: int
    statements: int
    completions: int
    duration: float
    group: Any = None


def _hourly_among(
    activity_key: uuid.UUID | None,
    window: Window,
    among: Among,
    params: dict[str, Any],
    filter_key: str = "h.learner_key",
) -> tuple[str, str, str]:
    """(join, condition, group) SQL narrowing and grouping hourly rows (alias ``h``) as
    ``among`` asks; the condition (on ``filter_key``) narrows to the cohort asked for, so
    it can be applied before the rows are added up. A learner's group value is the one
    their latest statement on the activity (or, store-wide, their latest statement) gives;
    ``activity_key`` None: on each row's own activity."""
    join, where, group = _among("h.learner_key", filter_key, window, among, params)
    if among.group_by not in (None, "cohort"):
        on = "h.activity_key"
        if activity_key is not None:
            params["group_activity"] = activity_key
            on = ":group_activity"
        join += (
            f" JOIN analytics_progress gp ON gp.store_id = :store AND gp.activity_key = {on}"
            " AND gp.learner_key = h.learner_key"
        )
        group = _group_value(among.group_by, params, "gp.groups")
    elif among.group_by is None:
        group = "NULL::text"
    return join, where, group


async def engagement(
    conn: AsyncConnection,
    store_id: int,
    activity: str | None,
    interval: str,
    tz: str,
    window: Window,
    among: Among = EVERYONE,
) -> list[Period]:
    if activity is None and among.plain and await recorded_zone(conn, store_id) == tz:
        inner = _inner_periods(window, interval, tz)
        if inner is not None:
            # The whole periods from the kept figures; only the part periods at the window's
            # ends (when it cuts any) are added up from hourly rows, each within one period.
            found = await _stored_periods(conn, store_id, interval, tz, inner)
            for edge in _cut_ends(window, inner):
                found += await _hourly_periods(conn, store_id, None, interval, tz, edge, among)
            return sorted(found, key=lambda p: p.start)
    return await _hourly_periods(conn, store_id, activity, interval, tz, window, among)


async def _hourly_periods(
    conn: AsyncConnection,
    store_id: int,
    activity: str | None,
    interval: str,
    tz: str,
    window: Window,
    among: Among,
) -> list[Period]:
    """The periods of ``window`` added up from the hourly rollup."""
    await _hash_joins(conn, among)
    params: dict[str, Any] = {
        "store": store_id,
        "activity": _key(activity or OVERALL),
        "interval": interval,
        "tz": tz,
    }
    join, where, group = _hourly_among(_key(activity or OVERALL), window, among, params, "learner_key")
    # Each learner's hours are added up per period first: a learner is then one row per
    # period, so counting them needs no DISTINCT, and grouping joins one row per learner.
    rows = await conn.execute(
        text(f"""
        SELECT {group} AS grp, h.period, count(*) AS learners, sum(h.statements) AS statements,
               sum(h.completions) AS completions, sum(h.duration) AS duration
          FROM (SELECT learner_key, activity_key, date_trunc(:interval, hour AT TIME ZONE :tz) AS period,
                       sum(statements) AS statements, sum(completions) AS completions,
                       sum(duration_seconds) AS duration
                  FROM analytics_hourly
                 WHERE store_id = :store AND activity_key = :activity{_window_sql(window, params)}{where}
                 GROUP BY 1, 2, 3) h{join}
         GROUP BY 1, 2 ORDER BY 2
    """),
        params,
    )
    return [
        Period(r.period, r.learners, int(r.statements), int(r.completions), float(r.duration), r.grp)
        for r in rows
    ]


def _period_start(instant: datetime, interval: str, zone: ZoneInfo, *, later: bool) -> datetime:
    """The start of the period (in ``zone``) that holds ``instant``; ``later``: of the first
    period starting at or after it."""
    day = instant.astimezone(zone).date()
    if interval == "week":
        day -= timedelta(days=day.weekday())
    elif interval == "month":
        day = day.replace(day=1)
    start = datetime.combine(day, time(0), zone)
    if later and start < instant:
        if interval == "month":
            day = (day + timedelta(days=31)).replace(day=1)
        else:
            day += timedelta(days=7 if interval == "week" else 1)
        start = datetime.combine(day, time(0), zone)
    return start.astimezone(UTC)


def _inner_periods(window: Window, interval: str, tz: str) -> Window | None:
    """The part of ``window`` made of whole periods in ``tz`` (a bound not given stays open),
    or None when it holds no whole period."""
    zone = ZoneInfo(tz)
    since = None if window.since is None else _period_start(window.since, interval, zone, later=True)
    until = None if window.until is None else _period_start(window.until, interval, zone, later=False)
    if since is not None and until is not None and since >= until:
        return None
    return Window(since, until)


def _cut_ends(window: Window, inner: Window) -> list[Window]:
    """The parts of ``window`` before and after its whole periods ``inner`` (none, one or two)."""
    ends = (Window(window.since, inner.since), Window(inner.until, window.until))
    return [end for end in ends if end.since != end.until]


def _period_bounds(window: Window, params: dict[str, Any], column: str = "period", name: str = "") -> str:
    """SQL keeping the kept periods (``column``, of kind ``:kind`` in ``:tz``) in the window;
    ``name`` tells its parameters apart from another window's in the same query."""
    bounds = ""
    if window.since is not None:
        bounds += (
            f" AND {column} >= analytics_period_of(:kind, CAST(:since{name} AS timestamptz) AT TIME ZONE :tz)"
        )
        params[f"since{name}"] = window.since
    if window.until is not None:
        bounds += (
            f" AND {column} < analytics_period_of(:kind, CAST(:until{name} AS timestamptz) AT TIME ZONE :tz)"
        )
        params[f"until{name}"] = window.until
    return bounds


async def _stored_periods(
    conn: AsyncConnection, store_id: int, interval: str, tz: str, window: Window
) -> list[Period]:
    """Store-wide periods from the period figures kept on write."""
    params: dict[str, Any] = {"store": store_id, "kind": interval, "tz": tz}
    bounds = _period_bounds(window, params)
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
    group: Any = None


async def hours(
    conn: AsyncConnection,
    store_id: int,
    activity: str | None,
    tz: str,
    window: Window,
    among: Among = EVERYONE,
) -> list[Cell]:
    if activity is None and among.plain and window.unbounded and await recorded_zone(conn, store_id) == tz:
        stored = await conn.execute(
            text(
                "SELECT period, statements, learners FROM analytics_period"
                " WHERE store_id = :store AND kind = 'cell' AND learners > 0"
            ),
            {"store": store_id},
        )
        return [Cell(r.period // 24, r.period % 24, int(r.statements), r.learners) for r in stored]
    await _hash_joins(conn, among)
    params: dict[str, Any] = {"store": store_id, "activity": _key(activity or OVERALL), "tz": tz}
    join, where, group = _hourly_among(_key(activity or OVERALL), window, among, params, "learner_key")
    rows = await conn.execute(
        text(f"""
        SELECT {group} AS grp, h.weekday, h.hour_of_day, sum(h.statements) AS statements,
               count(*) AS learners
          FROM (SELECT learner_key, activity_key,
                       extract(isodow FROM hour AT TIME ZONE :tz)::int - 1 AS weekday,
                       extract(hour FROM hour AT TIME ZONE :tz)::int AS hour_of_day,
                       sum(statements) AS statements
                  FROM analytics_hourly
                 WHERE store_id = :store AND activity_key = :activity{_window_sql(window, params)}{where}
                 GROUP BY 1, 2, 3, 4) h{join}
         GROUP BY 1, 2, 3
    """),
        params,
    )
    return [Cell(r.weekday, r.hour_of_day, int(r.statements), r.learners, r.grp) for r in rows]


async def child_activities(conn: AsyncConnection, store_id: int | list[int], parent: str) -> list[str]:
    """The activities statements have shown under ``parent`` (in any of the stores)."""
    stores = store_id if isinstance(store_id, list) else [store_id]
    rows = await conn.execute(
        text(
            "SELECT DISTINCT child_id FROM analytics_children"
            " WHERE store_id = ANY(CAST(:stores AS bigint[])) AND parent_key = :parent ORDER BY child_id"
        ),
        {"stores": stores, "parent": _key(parent)},
    )
    return [r.child_id for r in rows]


@dataclass(frozen=True)
class ActivitySummary:
    activity: str
    learners_started: int
    learners_completed: int
    duration: float
    group: Any = None


async def activity_summaries(
    conn: AsyncConnection,
    store_id: int,
    window: Window,
    among: Among = EVERYONE,
    *,
    top_level: bool = False,
    only: Sequence[str] | None = None,
) -> list[ActivitySummary]:
    """Each activity's learners, completers and time within the window, grouped as ``among``
    asks. ``top_level``: only the activities no statement has shown under a parent (the
    courses, not their elements); ``only``: only these activities."""
    params: dict[str, Any] = {"store": store_id, "overall": OVERALL_KEY}

    def narrow(alias: str) -> str:
        """SQL keeping the activities asked for, as ``alias``.activity_key."""
        return (_top_level(alias) if top_level else "") + _only(alias, only, params)

    if await _holds_everything(conn, store_id, window, among):
        window = Window(None, None)
    if window.unbounded and among.plain:
        stored = await conn.execute(
            text(
                "SELECT activity_id, learners_started, learners_completed, duration_seconds"
                " FROM analytics_activity a WHERE store_id = :store AND learners_started > 0" + narrow("a")
            ),
            params,
        )
        return [
            ActivitySummary(
                r.activity_id, r.learners_started, r.learners_completed, float(r.duration_seconds)
            )
            for r in stored
        ]
    await _hash_joins(conn, among)
    if window.unbounded:
        join, where, group = _among("p.learner_key", "p.learner_key", window, among, params)
        if among.group_by != "cohort":
            group = _group_value(among.group_by, params, "p.groups")
        rows = await conn.execute(
            text(f"""
            SELECT p.activity_id, {group} AS grp, count(*) AS started,
                   count(p.completed_at) AS completed, sum(p.duration_seconds) AS duration
              FROM analytics_progress p{join}
             WHERE p.store_id = :store AND p.activity_key <> :overall{where}{narrow("p")}
             GROUP BY 1, 2
            """),
            params,
        )
    elif among.plain:
        rows = await conn.execute(*await _plain_window(conn, store_id, window, narrow("a"), params))
    else:
        # Grouped, each row also looks up its learner's group, and one pass over the store
        # measured faster (bench.leaders); with cohorts, nested loops are off.
        join, where, group = _hourly_among(None, window, among, params)
        rows = await conn.execute(
            text(f"""
            SELECT a.activity_id, w.grp, w.started, w.completed, w.duration
              FROM (SELECT activity_key, grp, count(*) AS started,
                           count(*) FILTER (WHERE completed) AS completed, sum(duration) AS duration
                      FROM (SELECT h.activity_key, h.learner_key, {group} AS grp,
                                   bool_or(h.completed_at IS NOT NULL) AS completed,
                                   sum(h.duration_seconds) AS duration
                              FROM analytics_hourly h{join}
                             WHERE h.store_id = :store AND h.activity_key <> :overall
                                   {_window_sql(window, params, "h.hour")}{where}{narrow("h")}
                             GROUP BY 1, 2, 3) AS per_learner
                     GROUP BY activity_key, grp) AS w
              JOIN analytics_activity a ON a.store_id = :store AND a.activity_key = w.activity_key
            """),
            params,
        )
    return [ActivitySummary(r.activity_id, r.started, r.completed, float(r.duration), r.grp) for r in rows]


async def _whole_months(conn: AsyncConnection, store_id: int, window: Window) -> tuple[str, Window] | None:
    """The zone the store's month rows are kept in, and the part of ``window`` made of whole
    months in it; None when the window holds no whole month (or nothing was written)."""
    zone = await recorded_zone(conn, store_id)
    inner = None if zone is None else _inner_periods(window, "month", zone)
    return None if zone is None or inner is None else (zone, inner)


async def _plain_window(
    conn: AsyncConnection, store_id: int, window: Window, narrow: str, params: dict[str, Any]
) -> tuple[Any, dict[str, Any]]:
    """The query of an ungrouped activity list over a window, and its parameters.

    Activity by activity: within one, the window's whole local months are a range of its
    month rows' key, its cut ends (or all of it, when it holds no whole month) a range of
    its hourly rows' key (store, activity, hour), and both indexes hold the figures added
    up here. So a window costs what it holds, not the store's history, no table page is
    read, and a learner back in many hours of a month is counted from one row (bench.leaders,
    the courses from July on at 1M statements: 1,330,000 hourly rows, 656,000 month rows).
    Completers are read from the hours that hold a completion. ``narrow``: SQL keeping the
    activities asked for (as ``a``)."""
    months_in = await _whole_months(conn, store_id, window)
    if months_in is None:
        # Each learner's hours become one row, keyed by learner alone: one pass.
        query = f"""
            SELECT a.activity_id, NULL AS grp, w.started, w.completed, w.duration
              FROM analytics_activity a CROSS JOIN LATERAL (
                   SELECT count(*) AS started, count(*) FILTER (WHERE completed) AS completed,
                          sum(duration) AS duration
                     FROM (SELECT bool_or(h.completed_at IS NOT NULL) AS completed,
                                  sum(h.duration_seconds) AS duration
                             FROM analytics_hourly h
                            WHERE h.store_id = :store AND h.activity_key = a.activity_key
                                  {_window_sql(window, params, "h.hour")}
                            GROUP BY h.learner_key) AS per_learner) AS w
             WHERE a.store_id = :store AND a.activity_key <> :overall AND w.started > 0{narrow}
        """
        return text(query), params
    # The learners from the month rows and the cut ends' hours; the completers from the
    # hours that hold a completion (fewer); the time from the months' figures and the ends.
    zone, inner = months_in
    params.update(kind="month", tz=zone)
    months = _period_bounds(inner, params, "m.month", "_months")
    learners = [
        "SELECT m.learner_key FROM analytics_month_learners m"
        f" WHERE m.store_id = :store AND m.activity_key = a.activity_key{months}"
    ]
    durations = [
        "(SELECT COALESCE(sum(m.duration_seconds), 0) FROM analytics_activity_months m"
        f" WHERE m.store_id = :store AND m.activity_key = a.activity_key{months})"
    ]
    for n, end in enumerate(_cut_ends(window, inner)):
        hours = (
            " FROM analytics_hourly h WHERE h.store_id = :store AND h.activity_key = a.activity_key"
            + _window_sql(end, params, "h.hour", f"_cut{n}")
        )
        learners.append("SELECT h.learner_key" + hours)
        durations.append(f"(SELECT COALESCE(sum(h.duration_seconds), 0){hours})")
    query = f"""
        SELECT a.activity_id, NULL AS grp, s.started, c.completed, {" + ".join(durations)} AS duration
          FROM analytics_activity a
         CROSS JOIN LATERAL (
               SELECT count(*) AS started FROM (
                      SELECT learner_key FROM ({" UNION ALL ".join(learners)}) AS found
                       GROUP BY learner_key) AS present) AS s
         CROSS JOIN LATERAL (
               SELECT count(*) AS completed FROM (
                      SELECT h.learner_key FROM analytics_hourly h
                       WHERE h.store_id = :store AND h.activity_key = a.activity_key
                             AND h.completed_at IS NOT NULL{_window_sql(window, params, "h.hour")}
                       GROUP BY h.learner_key) AS done) AS c
         WHERE a.store_id = :store AND a.activity_key <> :overall AND s.started > 0{narrow}
    """
    return text(query), params


# Backends one windowed activity list is read by at once (read_activity_summaries): a page
# asks for two of the pool's connections, and PostgreSQL may use two cores for it.
PARTS = 2


async def read_activity_summaries(
    db: Database,
    reader: str,
    store_id: int,
    window: Window,
    among: Among = EVERYONE,
    *,
    top_level: bool = False,
) -> list[ActivitySummary]:
    """``activity_summaries`` in its own reads. A window of a plain list is read activity by
    activity, each from its own month and hourly rows, and PostgreSQL does not share such a
    query among its parallel workers; so the activities are split in ``PARTS`` of about
    equal weight, read at once in as many transactions (bench.leaders, July's 101 courses at
    1M statements: 290 against 220 ms, the one big programme in a part of its own). A window
    that holds every statement is read whole, from the kept totals. Each part is as fresh as
    its own snapshot, so a caller's ``as_of`` is read before this."""
    ask = partial(activity_summaries, store_id=store_id, window=window, among=among, top_level=top_level)
    if window.unbounded or not among.plain:
        return await read(db, ask, reader)

    async def plan(conn: AsyncConnection) -> tuple[list[ActivitySummary] | None, list[tuple[str, float]]]:
        """The whole answer when the kept totals give it, else the activities to share out."""
        if await _holds_everything(conn, store_id, window, among):
            # The window holds every statement: the kept totals, without asking again.
            return await ask(conn, window=Window(None, None)), []
        return None, await _activity_weights(conn, store_id, window, top_level)

    whole, weights = await read(db, plan, reader)
    if whole is not None:
        return whole
    parts = _balanced(weights, PARTS)
    found = await asyncio.gather(*(read(db, partial(ask, only=part), reader) for part in parts))
    return [summary for part in found for summary in part]


async def _activity_weights(
    conn: AsyncConnection, store_id: int, window: Window, top_level: bool
) -> list[tuple[str, float]]:
    """Each activity with a measure of how many rows a window of it reads. Hourly rows: the
    time its learners spent (spread over their hours), and a minute for each learner, so
    that one whose statements report no time still weighs. Month rows, when the window
    holds whole months: per month it touches, its statements or its learners, whichever
    are fewer (a programme's learners come back in many hours, a course's once or twice)."""
    params: dict[str, Any] = {"store": store_id, "overall": OVERALL_KEY}
    months_in = await _whole_months(conn, store_id, window)
    if months_in is None:
        weight = "duration_seconds + 60 * learners_started"
    else:
        zone = months_in[0]
        params.update(kind="month", tz=zone)
        touched = Window(
            window.since, window.until and _period_start(window.until, "month", ZoneInfo(zone), later=True)
        )
        weight = (
            "(SELECT COALESCE(sum(LEAST(m.statements, a.learners_started)), 0)"
            " FROM analytics_activity_months m WHERE m.store_id = :store AND m.activity_key = a.activity_key"
            f"{_period_bounds(touched, params, 'm.month')})"
        )
    rows = await conn.execute(
        text(
            f"SELECT activity_id, {weight} AS weight FROM analytics_activity a"
            " WHERE store_id = :store AND activity_key <> :overall AND learners_started > 0"
            + (_top_level("a") if top_level else "")
        ),
        params,
    )
    return [(r.activity_id, float(r.weight)) for r in rows]


def _balanced(weights: list[tuple[str, float]], parts: int) -> list[list[str]]:
    """The activities in at most ``parts`` lists of about equal weight: heaviest first, each
    into the lightest list so far."""
    lists: list[tuple[float, int, list[str]]] = [(0.0, n, []) for n in range(parts)]
    for activity, weight in sorted(weights, key=lambda w: w[1], reverse=True):
        total, n, members = heapq.heappop(lists)
        members.append(activity)
        heapq.heappush(lists, (total + weight, n, members))
    return [members for _, _, members in sorted(lists, key=lambda x: x[1]) if members]


def _only(alias: str, activities: Sequence[str] | None, params: dict[str, Any]) -> str:
    """SQL keeping the given activities (``alias``.activity_key); nothing when None."""
    if activities is None:
        return ""
    params["only"] = [_key(a) for a in activities]
    return f" AND {alias}.activity_key = ANY(CAST(:only AS uuid[]))"


def _top_level(alias: str) -> str:
    """SQL keeping the activities (``alias``.activity_key) no statement has shown under a parent."""
    return (
        " AND NOT EXISTS (SELECT 1 FROM analytics_children c"
        f" WHERE c.store_id = :store AND c.child_key = {alias}.activity_key)"
    )


async def _holds_everything(conn: AsyncConnection, store_id: int, window: Window, among: Among) -> bool:
    """Whether a plain list's window open to now (from a whole hour) holds every statement of
    the store, so that the kept totals answer it: none counts before it (every counted
    statement has its learner's store-wide hourly row)."""
    since = window.since
    if not (among.plain and window.until is None and since is not None and _on_the_hour(since)):
        return False
    before = await conn.execute(
        text(
            "SELECT EXISTS (SELECT 1 FROM analytics_hourly"
            " WHERE store_id = :store AND activity_key = :overall AND hour < :since)"
        ),
        {"store": store_id, "overall": OVERALL_KEY, "since": since},
    )
    return not before.scalar_one()


def _on_the_hour(instant: datetime) -> bool:
    return instant.astimezone(UTC).replace(minute=0, second=0, microsecond=0) == instant


async def assignment_list(conn: AsyncConnection, store_id: int) -> list[Assignment]:
    """Every assignment of the store (which cohort must complete which activity)."""
    return await cohort_store.assignments(conn, store_id)


@dataclass(frozen=True)
class Trend:
    """Learners who had started and completed an activity by a past instant, and now."""

    activity: str
    started_then: int
    completed_then: int
    started: int
    completed: int


async def trends(conn: AsyncConnection, store_id: int, activities: list[str], then: datetime) -> list[Trend]:
    """How far each activity had come by ``then``: today's learners (the activity's kept
    totals) less those who started, or completed, since. Those are read from the progress
    rows by time, so the cost follows what happened since ``then``, not the activity's size."""
    rows = await conn.execute(
        text("""
        SELECT a.activity_id, a.learners_started AS started, a.learners_completed AS completed,
               (SELECT count(*) FROM analytics_progress p
                 WHERE p.store_id = a.store_id AND p.activity_key = a.activity_key
                   AND p.first_at >= :then) AS started_since,
               (SELECT count(*) FROM analytics_progress p
                 WHERE p.store_id = a.store_id AND p.activity_key = a.activity_key
                   AND p.completed_at >= :then) AS completed_since
          FROM analytics_activity a
         WHERE a.store_id = :store AND a.activity_key = ANY(CAST(:keys AS uuid[]))
        """),
        {"store": store_id, "keys": [_key(a) for a in activities], "then": then},
    )
    return [
        Trend(
            r.activity_id,
            r.started - r.started_since,
            r.completed - r.completed_since,
            r.started,
            r.completed,
        )
        for r in rows
    ]


async def cohort_names(conn: AsyncConnection, store_id: int) -> list[str]:
    """The store's cohorts, by name."""
    rows = await conn.execute(
        text("SELECT name FROM cohorts WHERE store_id = :store ORDER BY name"), {"store": store_id}
    )
    return [r.name for r in rows]


async def cohort_exists(conn: AsyncConnection, store_id: int, name: str) -> bool:
    found = await conn.execute(
        text("SELECT EXISTS (SELECT FROM cohorts WHERE store_id = :store AND name = :name)"),
        {"store": store_id, "name": name},
    )
    return bool(found.scalar_one())


async def activity_cost(conn: AsyncConnection, store_id: int, activity: str) -> Cost | None:
    return await costs.get(conn, store_id, activity)


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
                "SELECT count(*) AS n, coalesce(sum(statements), 0) AS statements,"
                " min(stored) AS oldest, clock_timestamp() AS now FROM rollup_queue"
            )
        )
    ).one()
    return Backlog(row.n, int(row.statements), row.oldest, row.now)


async def activity_names(
    conn: AsyncConnection, store_id: int | list[int], activities: set[str]
) -> dict[str, dict[str, str]]:
    """Each activity's name (a language map): the canonical definition's, else the one its
    statements last gave it; activities never named are left out.

    Given several stores (a region), the first of them, in order, that names an activity
    names it (members that share a course usually name it alike)."""
    if not activities:
        return {}
    stores = store_id if isinstance(store_id, list) else [store_id]
    carried = await conn.execute(
        text(
            "SELECT store_id, activity_id, name FROM analytics_names"
            " WHERE store_id = ANY(CAST(:stores AS bigint[])) AND activity_key = ANY(CAST(:keys AS uuid[]))"
        ),
        {"stores": stores, "keys": [_key(a) for a in activities]},
    )
    by_store: dict[int, dict[str, dict[str, str]]] = {}
    for r in carried:
        by_store.setdefault(r.store_id, {})[r.activity_id] = r.name
    for store, activity, definition in await definitions(conn, stores, activities):
        if definition.get("name"):
            by_store.setdefault(store, {})[activity] = definition["name"]
    found: dict[str, dict[str, str]] = {}
    for store in reversed(stores):  # the first store's names last, so they win
        found.update(by_store.get(store, {}))
    return found


# --- one learner (access and erasure requests) ----------------------------------------------
# Found by the rollup keys the learner's own statements contribute to (analytics.rollup),
# each a primary-key lookup: the rollups have no index by learner alone.


async def learner_figures(
    conn: AsyncConnection, store_id: int, kept: list[LearnerKey]
) -> list[dict[str, Any]]:
    """A learner's figures per activity, as the rollups hold them (for a copy of their data)."""
    rows = await conn.execute(
        text("""
        SELECT activity_id, statements, completions, first_at, last_at, completed_at, passed,
               failed, best_score, duration_seconds, sessions, abandoned, rating_at,
               rating_scaled, rating_raw, rating_min, rating_max, rating_response
          FROM analytics_progress
         WHERE store_id = :store AND activity_key <> '00000000-0000-0000-0000-000000000000'
           AND (activity_key, learner_key) IN (SELECT * FROM unnest(CAST(:a AS uuid[]), CAST(:l AS uuid[])))
         ORDER BY activity_id
        """),
        {"store": store_id, "a": [_key(k.activity) for k in kept], "l": [_key(k.learner) for k in kept]},
    )
    return [dict(r._mapping) for r in rows]


async def learner_rows(
    conn: AsyncConnection, store_id: int, hourly: list[HourKey], kept: list[LearnerKey]
) -> int:
    """How many rollup rows hold figures of a learner: hourly and progress rows under these
    keys, and their store-wide presence in the periods of those hours."""
    overall = [k for k in hourly if k.activity == OVERALL]
    count = await conn.execute(
        text("""
        SELECT (SELECT count(*) FROM analytics_hourly WHERE store_id = :store
                   AND (activity_key, hour, learner_key) IN (SELECT * FROM unnest(
                       CAST(:ha AS uuid[]), CAST(:hh AS timestamptz[]), CAST(:hl AS uuid[]))))
             + (SELECT count(*) FROM analytics_progress WHERE store_id = :store
                   AND (activity_key, learner_key) IN (SELECT * FROM unnest(
                       CAST(:pa AS uuid[]), CAST(:pl AS uuid[]))))
             + (SELECT count(*) FROM (
                   SELECT DISTINCT p.kind, p.period, p.learner_key
                     FROM unnest(CAST(:oh AS timestamptz[]), CAST(:ol AS uuid[])) AS u(hour, learner)
                     JOIN analytics_zone z ON z.store_id = :store
                     CROSS JOIN (VALUES ('day'), ('week'), ('month'), ('cell')) AS k(kind)
                     JOIN analytics_presence p ON p.store_id = :store AND p.kind = k.kind
                      AND p.period = analytics_period_of(k.kind, u.hour AT TIME ZONE z.zone)
                      AND p.learner_key = u.learner) AS presence)
        """),
        {
            "store": store_id,
            "ha": [_key(k.activity) for k in hourly],
            "hh": [k.hour for k in hourly],
            "hl": [_key(k.learner) for k in hourly],
            "pa": [_key(k.activity) for k in kept],
            "pl": [_key(k.learner) for k in kept],
            "oh": [k.hour for k in overall],
            "ol": [_key(k.learner) for k in overall],
        },
    )
    return int(count.scalar_one())


# --- regions (several member stores, each read in its own index range) ----------------------


@dataclass(frozen=True)
class Shared:
    """A region's figure for one group, with how many of its learners each member store gave
    (what complementary suppression looks at)."""

    figures: GroupFigures
    per_store: dict[int, int]


async def region_completion(
    conn: AsyncConnection, stores: list[int], activity: str, window: Window, group_by: str | None
) -> list[Shared]:
    """Completion figures per group over the member stores' learners (a learner in two
    stores counts in each), with each store's share of every group."""
    if not stores:
        return []
    params: dict[str, Any] = {}
    learners = _per_learner(stores, [activity], window, Among(group_by), params)
    # Each group's stores as a list (one entry per learner), counted here: grouping by store
    # in SQL as well would work out every figure a second time for a count.
    rows = await conn.execute(
        text(f"""
        SELECT grp, {_FIGURES}, array_agg(store_id) AS stores
          FROM ({learners}) AS learners
         GROUP BY grp
        """),
        params,
    )
    return [Shared(_group_figures(r), dict(Counter(r.stores))) for r in rows]


@dataclass(frozen=True)
class Summed(Generic[T]):
    """A figure summed over a region's member stores, with how many members have learners in
    it and the largest member's learners (what complementary suppression needs)."""

    figure: T
    members: int
    largest: int


async def region_activities(conn: AsyncConnection, stores: list[int]) -> list[Summed[ActivitySummary]]:
    """Every activity the member stores have figures for, summed over them."""
    rows = await conn.execute(
        text("""
        SELECT activity_id, sum(learners_started) AS started, sum(learners_completed) AS completed,
               sum(duration_seconds) AS duration, count(*) AS members,
               max(learners_started) AS largest
          FROM analytics_activity
         WHERE store_id = ANY(CAST(:stores AS bigint[])) AND learners_started > 0
         GROUP BY activity_id
        """),
        {"stores": stores},
    )
    return [
        Summed(
            ActivitySummary(r.activity_id, int(r.started), int(r.completed), float(r.duration)),
            r.members,
            r.largest,
        )
        for r in rows
    ]


async def _zoned(conn: AsyncConnection, stores: list[int], tz: str) -> list[int]:
    """Those of the stores whose period figures are kept in ``tz``."""
    rows = await conn.execute(
        text(
            "SELECT store_id FROM analytics_zone"
            " WHERE store_id = ANY(CAST(:stores AS bigint[])) AND zone = :tz"
        ),
        {"stores": stores, "tz": tz},
    )
    return [r.store_id for r in rows]


async def _region_periods(
    conn: AsyncConnection,
    stores: list[int],
    activity: str | None,
    interval: str,
    tz: str,
    window: Window,
    params: dict[str, Any],
) -> str:
    """SQL for each member store's periods (``store_id, period, learners, statements,
    completions, duration``): the kept period figures where a store keeps them in ``tz``,
    else its hourly rows."""
    stored: list[int] = []
    inner = _inner_periods(window, interval, tz) if activity is None else None
    if inner is not None:
        stored = await _zoned(conn, stores, tz)
    params.update(kind=interval, interval=interval, tz=tz, activity=_key(activity or OVERALL))

    def hourly(members: str, within: Window, name: str) -> str:
        return f"""
            SELECT h.store_id, h.period, count(*) AS learners, sum(h.statements) AS statements,
                   sum(h.completions) AS completions, sum(h.duration) AS duration
              FROM (SELECT store_id, learner_key, date_trunc(:interval, hour AT TIME ZONE :tz) AS period,
                           sum(statements) AS statements, sum(completions) AS completions,
                           sum(duration_seconds) AS duration
                      FROM analytics_hourly
                     WHERE store_id = ANY(CAST(:{members} AS bigint[])) AND activity_key = :activity
                           {_window_sql(within, params, name=name)}
                     GROUP BY 1, 2, 3) h
             GROUP BY 1, 2"""

    parts = []
    if stored and inner is not None:
        # As in ``engagement``: whole periods kept, the cut ones at the ends from hourly rows.
        params["stored"] = stored
        parts.append(f"""
            SELECT store_id, analytics_period_start(:kind, period)::timestamp AS period, learners,
                   statements, completions, duration_seconds AS duration
              FROM analytics_period
             WHERE store_id = ANY(CAST(:stored AS bigint[])) AND kind = :kind AND learners > 0
                   {_period_bounds(inner, params)}""")
        for n, edge in enumerate(_cut_ends(window, inner)):
            parts.append(hourly("stored", edge, f"_edge{n}"))
    rest = [s for s in stores if s not in set(stored)]
    if rest or not parts:  # a region without members: no rows, from valid SQL
        params["hourly"] = rest
        parts.append(hourly("hourly", window, ""))
    return " UNION ALL ".join(parts)


def _period(r: Any) -> Period:
    return Period(r.period, int(r.learners), int(r.statements), int(r.completions), float(r.duration))


async def region_engagement(
    conn: AsyncConnection, stores: list[int], activity: str | None, interval: str, tz: str, window: Window
) -> dict[int, list[Period]]:
    """Each member store's periods (as ``engagement`` gives one store's)."""
    params: dict[str, Any] = {}
    out: dict[int, list[Period]] = {s: [] for s in stores}
    for r in await conn.execute(
        text(await _region_periods(conn, stores, activity, interval, tz, window, params)), params
    ):
        out[r.store_id].append(_period(r))
    return out


async def region_engagement_summed(
    conn: AsyncConnection, stores: list[int], activity: str | None, interval: str, tz: str, window: Window
) -> list[Summed[Period]]:
    """The member stores' periods added up, in SQL: a region's answer is a few rows however
    many members it has."""
    params: dict[str, Any] = {}
    periods = await _region_periods(conn, stores, activity, interval, tz, window, params)
    rows = await conn.execute(
        text(f"""
        SELECT period, sum(learners) AS learners, sum(statements) AS statements,
               sum(completions) AS completions, sum(duration) AS duration,
               count(*) AS members, max(learners) AS largest
          FROM ({periods}) p
         GROUP BY period
        """),
        params,
    )
    return [Summed(_period(r), r.members, int(r.largest)) for r in rows]


async def _region_cells(
    conn: AsyncConnection,
    stores: list[int],
    activity: str | None,
    tz: str,
    window: Window,
    params: dict[str, Any],
) -> str:
    """SQL for each member store's hours of the week (``store_id, weekday, hour_of_day,
    statements, learners``): the kept cells where a store keeps them in ``tz`` (all time,
    store-wide), else its hourly rows."""
    stored = await _zoned(conn, stores, tz) if activity is None and window.unbounded else []
    params.update(activity=_key(activity or OVERALL), tz=tz)
    parts = []
    if stored:
        params["stored"] = stored
        parts.append("""
            SELECT store_id, period / 24 AS weekday, period % 24 AS hour_of_day, statements, learners
              FROM analytics_period
             WHERE store_id = ANY(CAST(:stored AS bigint[])) AND kind = 'cell' AND learners > 0""")
    hourly = [s for s in stores if s not in set(stored)]
    if hourly or not parts:  # a region without members: no rows, from valid SQL
        params["hourly"] = hourly
        parts.append(f"""
            SELECT h.store_id, h.weekday, h.hour_of_day, sum(h.statements) AS statements,
                   count(*) AS learners
              FROM (SELECT store_id, learner_key,
                           extract(isodow FROM hour AT TIME ZONE :tz)::int - 1 AS weekday,
                           extract(hour FROM hour AT TIME ZONE :tz)::int AS hour_of_day,
                           sum(statements) AS statements
                      FROM analytics_hourly
                     WHERE store_id = ANY(CAST(:hourly AS bigint[])) AND activity_key = :activity
                           {_window_sql(window, params)}
                     GROUP BY 1, 2, 3, 4) h
             GROUP BY 1, 2, 3""")
    return " UNION ALL ".join(parts)


def _cell(r: Any) -> Cell:
    return Cell(r.weekday, r.hour_of_day, int(r.statements), int(r.learners))


async def region_hours(
    conn: AsyncConnection, stores: list[int], activity: str | None, tz: str, window: Window
) -> dict[int, list[Cell]]:
    """Each member store's hours of the week (as ``hours`` gives one store's)."""
    params: dict[str, Any] = {}
    out: dict[int, list[Cell]] = {s: [] for s in stores}
    cells = await _region_cells(conn, stores, activity, tz, window, params)
    for r in await conn.execute(text(cells), params):
        out[r.store_id].append(_cell(r))
    return out


async def region_hours_summed(
    conn: AsyncConnection, stores: list[int], activity: str | None, tz: str, window: Window
) -> list[Summed[Cell]]:
    """The member stores' hours of the week added up, in SQL (at most 168 rows: a course
    across fifty members is thousands of per-store cells, too many to add up in Python
    within the answer's time)."""
    params: dict[str, Any] = {}
    cells = await _region_cells(conn, stores, activity, tz, window, params)
    rows = await conn.execute(
        text(f"""
        SELECT weekday, hour_of_day, sum(statements) AS statements, sum(learners) AS learners,
               count(*) AS members, max(learners) AS largest
          FROM ({cells}) c
         GROUP BY weekday, hour_of_day
        """),
        params,
    )
    return [Summed(_cell(r), r.members, int(r.largest)) for r in rows]
