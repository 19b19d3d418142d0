"""The analytics write side: keeping the rollups as statements are stored and voided, and
recounting them when a store's zone or verb sets change.

Each SQL text is whole where it is defined, but for where the two large upserts read their
rows (``{rows}``, filled in by ``_both``). What one statement contributes is computed in
``analytics.rollup`` (pure); this module writes it. Activities and learners are keyed by
``store.keys.analytics_key``; the store as a whole by the nil UUID (``OVERALL_KEY``), which
the SQL spells out.
"""

from __future__ import annotations

import asyncio
import ctypes
import itertools
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

import orjson
from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncConnection

from lrs.analytics.reads import recorded_zone
from lrs.analytics.rollup import OVERALL, HourKey, Row, children, contributions, merged, names, per_learner
from lrs.config import StoreSettings
from lrs.jsontext import dumps
from lrs.store.bulk import copy_rows
from lrs.store.keys import analytics_key as _key
from lrs.store.keys import index_key

T = TypeVar("T")

# The rows of an upsert reach PostgreSQL in one of two ways (store.statements does the same
# with INSERT and COPY). A few go as one JSON parameter, parsed by PostgreSQL in C (a dozen
# bound arrays cost asyncpg a type check per element). From STAGE_FROM rows on they go to
# a temporary table with binary COPY, three round trips more: parsing the JSON took half of
# a progress upsert of 7,836 rows (55 of 114 ms, EXPLAIN ANALYZE). Columns as the upserts
# read them.
STAGE_FROM = 500
_STAGES = {
    "fold_hourly": (
        ("activity_key", "uuid"), ("hour", "timestamptz"), ("learner_key", "uuid"),
        ("statements", "int"), ("completions", "int"), ("first_at", "timestamptz"),
        ("last_at", "timestamptz"), ("completed_at", "timestamptz"), ("passed", "boolean"),
        ("failed", "boolean"), ("best_score", "float8"), ("duration_seconds", "float8"),
        ("sessions", "int"), ("abandoned", "int"),
    ),
    "fold_progress": (
        ("activity_key", "uuid"), ("learner_key", "uuid"), ("activity_id", "text"),
        ("learner", "text"), ("learner_name", "text"), ("groups", "jsonb"),
        ("statements", "int"), ("completions", "int"), ("first_at", "timestamptz"),
        ("last_at", "timestamptz"), ("completed_at", "timestamptz"), ("passed", "boolean"),
        ("failed", "boolean"), ("best_score", "float8"), ("duration_seconds", "float8"),
        ("sessions", "int"), ("abandoned", "int"), ("rating_at", "timestamptz"),
        ("rating_scaled", "float8"), ("rating_raw", "float8"), ("rating_min", "float8"),
        ("rating_max", "float8"), ("rating_response", "text"),
    ),
}  # fmt: skip


class Upsert(NamedTuple):
    """An upsert whose rows are those of ``_STAGES[table]``, in both its forms."""

    table: str
    columns: str  # the rows' column definitions, as SQL
    staged: TextClause  # reads the temporary table
    inline: TextClause  # reads the JSON parameter ``:rows``


def _defined(table: str) -> str:
    """The columns of ``_STAGES[table]`` as SQL column definitions."""
    return ", ".join(f"{name} {kind}" for name, kind in _STAGES[table])


def _both(sql: str, table: str, alias: str) -> Upsert:
    """``sql`` reading its rows ``FROM {rows}``, in both forms."""
    columns = _defined(table)
    return Upsert(
        table,
        columns,
        text(sql.replace("{rows}", f"{table} {alias}")),
        text(sql.replace("{rows}", f"json_to_recordset(CAST(:rows AS json)) AS {alias}({columns})")),
    )


# Returns the store-wide rows that are new: a learner's first statement in an hour. Hourly
# rows carry figures only; who the learner is, and their groups, are kept once per
# (activity, learner) in the progress rows. A contribution folds into a stored row: counts
# and time add up, the earliest and latest moments are kept. The same contributions are
# added to their activities' local months (in the store's recorded zone, or the one its
# first write records).
_UPSERT_HOURLY = _both(
    """
WITH src AS MATERIALIZED (
    SELECT * FROM {rows}
), up AS (
    INSERT INTO analytics_hourly AS t
           (store_id, activity_key, hour, learner_key, statements, completions, first_at, last_at,
            completed_at, passed, failed, best_score, duration_seconds, sessions, abandoned)
    SELECT CAST(:store AS bigint), src.* FROM src
        ON CONFLICT (store_id, activity_key, hour, learner_key) DO UPDATE SET
           statements = t.statements + EXCLUDED.statements,
           completions = t.completions + EXCLUDED.completions,
           first_at = LEAST(t.first_at, EXCLUDED.first_at),
           last_at = GREATEST(t.last_at, EXCLUDED.last_at),
           completed_at = LEAST(t.completed_at, EXCLUDED.completed_at),
           passed = t.passed OR EXCLUDED.passed,
           failed = t.failed OR EXCLUDED.failed,
           best_score = GREATEST(t.best_score, EXCLUDED.best_score),
           duration_seconds = t.duration_seconds + EXCLUDED.duration_seconds,
           sessions = t.sessions + EXCLUDED.sessions,
           abandoned = t.abandoned + EXCLUDED.abandoned
    RETURNING activity_key, hour, learner_key, xmax = 0 AS arrived
), zone AS (
    SELECT COALESCE((SELECT zone FROM analytics_zone WHERE store_id = :store), CAST(:zone AS text)) AS zone
), learners AS (
    -- A learner's month row is new only with a new hour of theirs.
    INSERT INTO analytics_month_learners (store_id, activity_key, month, learner_key)
    SELECT DISTINCT CAST(:store AS bigint), up.activity_key,
           analytics_period_of('month', up.hour AT TIME ZONE z.zone), up.learner_key
      FROM up, zone z WHERE up.arrived AND up.activity_key <> '00000000-0000-0000-0000-000000000000'
     ORDER BY 2, 3, 4
        ON CONFLICT DO NOTHING
), totals AS (
    INSERT INTO analytics_activity_months AS t
           (store_id, activity_key, month, statements, completions, duration_seconds)
    SELECT CAST(:store AS bigint), src.activity_key,
           analytics_period_of('month', src.hour AT TIME ZONE z.zone), sum(src.statements),
           sum(src.completions), sum(src.duration_seconds)
      FROM src, zone z WHERE src.activity_key <> '00000000-0000-0000-0000-000000000000'
     GROUP BY 2, 3 ORDER BY 2, 3
        ON CONFLICT (store_id, activity_key, month) DO UPDATE SET
           statements = t.statements + EXCLUDED.statements,
           completions = t.completions + EXCLUDED.completions,
           duration_seconds = t.duration_seconds + EXCLUDED.duration_seconds
)
SELECT hour, learner_key FROM up WHERE arrived AND activity_key = '00000000-0000-0000-0000-000000000000'
""",
    "fold_hourly",
    "u",
)

# `xmax = 0` tells an inserted row from an updated one; `was_completed` keeps what the row
# said before this upsert, both so that the activity figures can count learners exactly.
# The learner's name and grouping values come from their latest statement, the rating from
# their latest rating.
_UPSERT_PROGRESS = _both(
    """
INSERT INTO analytics_progress AS t
       (store_id, activity_key, learner_key, activity_id, learner, learner_name, groups,
        statements, completions, first_at, last_at, completed_at, passed, failed, best_score,
        duration_seconds, sessions, abandoned, rating_at, rating_scaled, rating_raw, rating_min,
        rating_max, rating_response, was_completed)
SELECT CAST(:store AS bigint), u.*, false
  FROM {rows}
    ON CONFLICT (store_id, activity_key, learner_key) DO UPDATE SET
       statements = t.statements + EXCLUDED.statements,
       completions = t.completions + EXCLUDED.completions,
       first_at = LEAST(t.first_at, EXCLUDED.first_at),
       last_at = GREATEST(t.last_at, EXCLUDED.last_at),
       completed_at = LEAST(t.completed_at, EXCLUDED.completed_at),
       passed = t.passed OR EXCLUDED.passed,
       failed = t.failed OR EXCLUDED.failed,
       best_score = GREATEST(t.best_score, EXCLUDED.best_score),
       duration_seconds = t.duration_seconds + EXCLUDED.duration_seconds,
       sessions = t.sessions + EXCLUDED.sessions,
       abandoned = t.abandoned + EXCLUDED.abandoned,
       rating_at = CASE WHEN t.rating_at IS NULL OR EXCLUDED.rating_at >= t.rating_at
                 THEN EXCLUDED.rating_at ELSE t.rating_at END,
       rating_scaled = CASE WHEN t.rating_at IS NULL OR EXCLUDED.rating_at >= t.rating_at
                 THEN EXCLUDED.rating_scaled ELSE t.rating_scaled END,
       rating_raw = CASE WHEN t.rating_at IS NULL OR EXCLUDED.rating_at >= t.rating_at
                 THEN EXCLUDED.rating_raw ELSE t.rating_raw END,
       rating_min = CASE WHEN t.rating_at IS NULL OR EXCLUDED.rating_at >= t.rating_at
                 THEN EXCLUDED.rating_min ELSE t.rating_min END,
       rating_max = CASE WHEN t.rating_at IS NULL OR EXCLUDED.rating_at >= t.rating_at
                 THEN EXCLUDED.rating_max ELSE t.rating_max END,
       rating_response = CASE WHEN t.rating_at IS NULL OR EXCLUDED.rating_at >= t.rating_at
                 THEN EXCLUDED.rating_response ELSE t.rating_response END,
       groups = CASE WHEN EXCLUDED.last_at >= t.last_at THEN EXCLUDED.groups ELSE t.groups END,
       learner_name = CASE WHEN EXCLUDED.last_at >= t.last_at
                           THEN COALESCE(EXCLUDED.learner_name, t.learner_name)
                           ELSE t.learner_name END,
       was_completed = t.completed_at IS NOT NULL
RETURNING activity_key, activity_id, xmax = 0 AS arrived, was_completed,
          completed_at IS NOT NULL AS completed
""",
    "fold_progress",
    "u",
)

_ACTIVITY_CHANGES = text("""
INSERT INTO analytics_activity AS t
       (store_id, activity_key, activity_id, learners_started, learners_completed, duration_seconds)
SELECT CAST(:store AS bigint), u.* FROM unnest(CAST(:keys AS uuid[]), CAST(:ids AS text[]),
       CAST(:started AS int[]), CAST(:completed AS int[]), CAST(:duration AS float8[])) AS u
    ON CONFLICT (store_id, activity_key) DO UPDATE SET
       learners_started = t.learners_started + EXCLUDED.learners_started,
       learners_completed = t.learners_completed + EXCLUDED.learners_completed,
       duration_seconds = t.duration_seconds + EXCLUDED.duration_seconds
""")

# Store-wide figures per local period (day, week, month, and "cell": the hour of the week).
# `:changes` are +1 for a learner's new active hour and -1 for one that voiding emptied; a
# learner counts in a period while it has active hours. The zone is the one the store's
# periods are kept in; a store's first write records its own.
_PERIOD_CHANGES = text("""
WITH zone AS (
    SELECT zone FROM analytics_zone WHERE store_id = :store
    UNION ALL
    SELECT CAST(:zone AS text) WHERE NOT EXISTS (SELECT FROM analytics_zone WHERE store_id = :store)
), recorded AS (
    INSERT INTO analytics_zone (store_id, zone)
    SELECT CAST(:store AS bigint), zone FROM zone ON CONFLICT DO NOTHING
), kinds (kind) AS (VALUES ('day'), ('week'), ('month'), ('cell')),
hours AS (
    SELECT k.kind, analytics_period_of(k.kind, u.hour AT TIME ZONE z.zone) AS period,
           u.learner, u.change
      FROM unnest(CAST(:active_hours AS timestamptz[]), CAST(:active_learners AS uuid[]),
                  CAST(:changes AS int[])) AS u(hour, learner, change), zone z, kinds k
), present AS (
    INSERT INTO analytics_presence AS t (store_id, kind, period, learner_key, hours)
    SELECT CAST(:store AS bigint), kind, period, learner, sum(change) FROM hours
     GROUP BY kind, period, learner ORDER BY kind, period, learner
        ON CONFLICT (store_id, kind, period, learner_key) DO UPDATE SET hours = t.hours + EXCLUDED.hours
    RETURNING kind, period, xmax = 0 AS arrived, hours
), learners AS (
    SELECT kind, period,
           count(*) FILTER (WHERE arrived AND hours > 0)
           - count(*) FILTER (WHERE NOT arrived AND hours <= 0) AS change
      FROM present GROUP BY kind, period
), totals AS (
    SELECT k.kind, analytics_period_of(k.kind, u.hour AT TIME ZONE z.zone) AS period,
           sum(u.statements) AS statements, sum(u.completions) AS completions,
           sum(u.duration) AS duration
      FROM unnest(CAST(:hours AS timestamptz[]), CAST(:statements AS int[]),
                  CAST(:completions AS int[]), CAST(:duration AS float8[]))
           AS u(hour, statements, completions, duration), zone z, kinds k
     GROUP BY 1, 2
)
INSERT INTO analytics_period AS t
       (store_id, kind, period, learners, statements, completions, duration_seconds)
SELECT CAST(:store AS bigint), kind, period, COALESCE(l.change, 0), COALESCE(s.statements, 0),
       COALESCE(s.completions, 0), COALESCE(s.duration, 0)
  FROM totals s FULL JOIN learners l USING (kind, period)
 ORDER BY kind, period
    ON CONFLICT (store_id, kind, period) DO UPDATE SET
       learners = t.learners + EXCLUDED.learners,
       statements = t.statements + EXCLUDED.statements,
       completions = t.completions + EXCLUDED.completions,
       duration_seconds = t.duration_seconds + EXCLUDED.duration_seconds
""")

_CHILDREN = text("""
INSERT INTO analytics_children (store_id, parent_key, child_key, child_id)
SELECT CAST(:store AS bigint), u.parent, u.child, u.child_id
  FROM unnest(CAST(:parents AS uuid[]), CAST(:children AS uuid[]), CAST(:ids AS text[]))
       AS u(parent, child, child_id)
    ON CONFLICT DO NOTHING
""")


class Presence(NamedTuple):
    """A learner's active hour arriving (+1) in, or leaving (-1) the store-wide periods."""

    hour: datetime
    learner_key: uuid.UUID
    change: int


@dataclass(frozen=True)
class Total:
    """What one learner-hour adds to (or, negative, takes from) its periods."""

    hour: datetime
    statements: int
    completions: int
    duration: float

    @classmethod
    def of(cls, row: Row) -> Total:
        return cls(row.hour, row.statements, row.completions, row.duration)


# Activity key: (activity id, the name statements gave it, as a language map).
Names = dict[uuid.UUID, tuple[str, dict[str, str]]]


@dataclass(frozen=True)
class Added:
    """What some statements add to the rollups, computed before it is written (the worker
    computes the next batch while the last one's SQL runs)."""

    pairs: list[tuple[str, str]]  # (parent, child) activities
    named: Names
    hours: HourlyRows  # merged by (activity, hour, learner)
    learners: ProgressRows  # merged by (activity, learner)
    totals: list[Total]  # what the store-wide hourly rows add to their periods


def added(statements: Iterable[dict[str, Any]], settings: StoreSettings) -> Added:
    """What newly stored, non-voided statements add (pure: no I/O). One pass: given a
    generator, each statement can be freed once read (a batch's parsed statements are
    most of the fold's memory)."""
    named: Names = {}
    rows: list[Row] = []
    pairs: set[tuple[str, str]] = set()
    for s in statements:
        for activity, name in names(s):
            _rename(named, _key(activity), activity, name)
        rows.extend(contributions(s, settings))
        pairs.update(children(s))
    hours = merged(rows)
    return Added(
        sorted(pairs),
        named,
        HourlyRows.of(hours),
        ProgressRows.of(merged(rows, per_learner)),
        [Total.of(r) for r in hours if r.activity == OVERALL],
    )


def _rename(named: Names, key: uuid.UUID, activity: str, name: dict[str, str]) -> None:
    """Language by language, the later name wins."""
    named[key] = (activity, {**named.get(key, (activity, {}))[1], **name})


async def add(
    conn: AsyncConnection,
    store_id: int,
    statements: list[dict[str, Any]],
    settings: StoreSettings,
    zone: str,
) -> None:
    """Fold newly stored, non-voided statements into the rollups.

    ``zone`` is the store's time zone, recorded for its period figures on its first write.
    """
    await write_added(conn, store_id, added(statements, settings), zone)


async def write_added(conn: AsyncConnection, store_id: int, found: Added, zone: str) -> None:
    """Write what ``added`` computed into the rollups."""
    await _write_children(conn, store_id, found.pairs)
    await _write_names(conn, store_id, found.named)
    # Per-learner rows first; the per-activity and per-period rows, which every concurrent
    # batch shares, last.
    arrived = await _upsert_hourly(conn, store_id, found.hours, zone)
    await _upsert_progress(conn, store_id, found.learners)
    await _change_periods(
        conn,
        store_id,
        zone,
        [Presence(hour, learner, 1) for hour, learner in arrived],
        found.totals,
    )


async def _write_children(conn: AsyncConnection, store_id: int, pairs: list[tuple[str, str]]) -> None:
    if pairs:
        await conn.execute(
            _CHILDREN,
            {
                "store": store_id,
                "parents": [_key(p) for p, _ in pairs],
                "children": [_key(c) for _, c in pairs],
                "ids": [c for _, c in pairs],
            },
        )


async def _write_names(conn: AsyncConnection, store_id: int, named: Names) -> None:
    if named:
        keys = sorted(named)
        await conn.execute(
            _NAMES,
            {
                "store": store_id,
                "keys": keys,
                "ids": [named[k][0] for k in keys],
                "names": [dumps(named[k][1]) for k in keys],
            },
        )


# Language by language, a newer name replaces an older one.
_NAMES = text("""
INSERT INTO analytics_names AS t (store_id, activity_key, activity_id, name)
SELECT CAST(:store AS bigint), u.key, u.id, u.name
  FROM unnest(CAST(:keys AS uuid[]), CAST(:ids AS text[]), CAST(:names AS jsonb[])) AS u(key, id, name)
    ON CONFLICT (store_id, activity_key) DO UPDATE SET name = t.name || EXCLUDED.name
""")


async def _upsert(conn: AsyncConnection, upsert: Upsert, rows: list[tuple[Any, ...]], **params: Any) -> Any:
    """Run ``upsert`` on ``rows``, sent as STAGE_FROM says."""
    table = upsert.table
    columns = _STAGES[table]
    names = [name for name, _ in columns]
    if len(rows) < STAGE_FROM:
        # A jsonb column's values are JSON texts already: embedded as they are.
        texts = {name for name, kind in columns if kind == "jsonb"}
        payload = [
            {name: orjson.Fragment(v) if name in texts else v for name, v in zip(names, r, strict=True)}
            for r in rows
        ]
        # Keys are asyncpg's UUIDs (store.keys), which orjson writes only as text.
        sent = orjson.dumps(payload, default=str).decode()
        return await conn.execute(upsert.inline, {**params, "rows": sent})
    # Emptied first: one transaction may upsert more than once (voiding after a fold, a
    # whole rebuild).
    await conn.execute(
        text(f"CREATE TEMPORARY TABLE IF NOT EXISTS {table} ({upsert.columns}) ON COMMIT DELETE ROWS")
    )
    await conn.execute(text(f"TRUNCATE {table}"))
    await copy_rows(conn, table, names, rows)
    return await conn.execute(upsert.staged, params)


def _figures(r: Row) -> tuple[Any, ...]:
    return (
        r.statements, r.completions, r.first_at, r.last_at, r.completed_at, r.passed, r.failed,
        r.best_score, r.duration, r.sessions, r.abandoned,
    )  # fmt: skip


def _rating(r: Row) -> tuple[Any, ...]:
    if r.rating is None:
        return (None,) * 6
    return (r.rating.at, r.rating.scaled, r.rating.raw, r.rating.min, r.rating.max, r.rating.response)


@dataclass(frozen=True)
class HourlyRows:
    """Hourly rows, ready to send (as ``_STAGES["fold_hourly"]``)."""

    rows: list[tuple[Any, ...]]

    @classmethod
    def of(cls, rows: list[Row]) -> HourlyRows:
        return cls([(_key(r.activity), r.hour, _key(r.learner), *_figures(r)) for r in rows])


@dataclass(frozen=True)
class ProgressRows:
    """Progress rows, ready to send (as ``_STAGES["fold_progress"]``), with the time they
    add to each activity."""

    rows: list[tuple[Any, ...]]
    durations: dict[uuid.UUID, tuple[str, float]]  # activity key: (activity id, seconds)

    @classmethod
    def of(cls, rows: list[Row]) -> ProgressRows:
        staged = [
            (_key(r.activity), _key(r.learner), r.activity, r.learner, r.name, dumps(r.groups),
             *_figures(r), *_rating(r))
            for r in rows
        ]  # fmt: skip
        durations: dict[uuid.UUID, tuple[str, float]] = {}
        for row in rows:
            if row.activity != OVERALL:
                key = _key(row.activity)
                durations[key] = (row.activity, durations.get(key, (row.activity, 0.0))[1] + row.duration)
        return cls(staged, durations)


async def _upsert_hourly(
    conn: AsyncConnection, store_id: int, rows: HourlyRows, zone: str
) -> list[tuple[datetime, uuid.UUID]]:
    """Upsert hourly rows, and add them to their activities' months; returns (hour, learner
    key) of the store-wide rows that are new."""
    if not rows.rows:
        return []
    result = await _upsert(conn, _UPSERT_HOURLY, rows.rows, store=store_id, zone=zone)
    return [(r.hour, r.learner_key) for r in result]


@dataclass
class ActivityChange:
    activity: str
    started: int = 0
    completed: int = 0
    duration: float = 0.0


async def _upsert_progress(
    conn: AsyncConnection,
    store_id: int,
    rows: ProgressRows,
    changes: dict[uuid.UUID, ActivityChange] | None = None,
) -> None:
    """Upsert progress rows, and count what they change in their activities' figures.

    ``changes`` may already hold what removing rows took away (when voiding).
    """
    changes = {} if changes is None else changes
    if rows.rows:
        result = await _upsert(conn, _UPSERT_PROGRESS, rows.rows, store=store_id)
        for r in result:
            if r.activity_id == OVERALL:
                continue  # store-wide rows carry learners' groups; the activity list skips them
            change = changes.setdefault(r.activity_key, ActivityChange(r.activity_id))
            change.started += r.arrived
            change.completed += r.completed and not r.was_completed
        for key, (activity, seconds) in rows.durations.items():
            changes.setdefault(key, ActivityChange(activity)).duration += seconds
    if changes:
        keys = sorted(changes)
        await conn.execute(
            _ACTIVITY_CHANGES,
            {
                "store": store_id,
                "keys": keys,
                "ids": [changes[k].activity for k in keys],
                "started": [changes[k].started for k in keys],
                "completed": [changes[k].completed for k in keys],
                "duration": [changes[k].duration for k in keys],
            },
        )


async def _change_periods(
    conn: AsyncConnection,
    store_id: int,
    zone: str,
    active: list[Presence],
    totals: list[Total],
) -> None:
    if not active and not totals:
        return
    await conn.execute(
        _PERIOD_CHANGES,
        {
            "store": store_id,
            "zone": zone,
            "active_hours": [a.hour for a in active],
            "active_learners": [a.learner_key for a in active],
            "changes": [a.change for a in active],
            "hours": [t.hour for t in totals],
            "statements": [t.statements for t in totals],
            "completions": [t.completions for t in totals],
            "duration": [t.duration for t in totals],
        },
    )


async def recompute_voided(
    conn: AsyncConnection, store_id: int, voided: list[uuid.UUID], settings: StoreSettings, zone: str
) -> None:
    """Take the voided statements out of every rollup they had contributed to."""
    if not voided:
        return
    found = await conn.execute(
        text("SELECT statement FROM statements WHERE store_id = :store AND id = ANY(CAST(:ids AS uuid[]))"),
        {"store": store_id, "ids": voided},
    )
    await take_out(conn, store_id, [s.statement for s in found], settings, zone)


async def take_out(
    conn: AsyncConnection, store_id: int, statements: list[dict[str, Any]], settings: StoreSettings, zone: str
) -> None:
    """Take statements out of every rollup they had contributed to: voided ones, or ones
    that are gone or changed (erased, redacted, past retention).

    The rows they touched are deleted and rebuilt from the same learners' statements as
    stored now (found through the filter index), leaving out those still queued for the
    worker, which adds them when it folds them; the activity and period figures change by
    the difference. The caller holds the fold lock, so no fold runs meanwhile.
    """
    gone = [row for s in statements for row in contributions(s, settings)]
    touched = {row.key for row in gone}
    touched_progress = {per_learner(row) for row in gone}
    if not touched:
        return
    keys = sorted(touched)
    # What the deleted rows had added to their activities' months is taken away with them;
    # the rebuilt rows add theirs again as they are upserted.
    removed = await conn.execute(
        text("""
        WITH gone AS (
            DELETE FROM analytics_hourly WHERE store_id = :store AND (activity_key, hour, learner_key)
                IN (SELECT * FROM unnest(CAST(:a AS uuid[]), CAST(:h AS timestamptz[]), CAST(:l AS uuid[])))
            RETURNING activity_key, hour, learner_key, statements, completions, duration_seconds
        ), months AS (
            INSERT INTO analytics_activity_months AS t
                   (store_id, activity_key, month, statements, completions, duration_seconds)
            SELECT CAST(:store AS bigint), g.activity_key,
                   analytics_period_of('month', g.hour AT TIME ZONE z.zone), -sum(g.statements),
                   -sum(g.completions), -sum(g.duration_seconds)
              FROM gone g JOIN analytics_zone z ON z.store_id = :store
             WHERE g.activity_key <> '00000000-0000-0000-0000-000000000000'
             GROUP BY 2, 3 ORDER BY 2, 3
                ON CONFLICT (store_id, activity_key, month) DO UPDATE SET
                   statements = t.statements + EXCLUDED.statements,
                   completions = t.completions + EXCLUDED.completions,
                   duration_seconds = t.duration_seconds + EXCLUDED.duration_seconds
        )
        SELECT hour, learner_key, statements, completions, duration_seconds
          FROM gone WHERE activity_key = '00000000-0000-0000-0000-000000000000'
        """),
        {
            "store": store_id,
            "a": [_key(k.activity) for k in keys],
            "h": [k.hour for k in keys],
            "l": [_key(k.learner) for k in keys],
        },
    )
    old_overall = removed.all()
    changes: dict[uuid.UUID, ActivityChange] = {}
    if touched_progress:
        pairs = sorted(touched_progress)
        result = await conn.execute(
            text("""
            DELETE FROM analytics_progress WHERE store_id = :store AND (activity_key, learner_key)
                IN (SELECT * FROM unnest(CAST(:a AS uuid[]), CAST(:l AS uuid[])))
            RETURNING activity_key, activity_id, completed_at IS NOT NULL AS completed, duration_seconds
            """),
            {
                "store": store_id,
                "a": [_key(p.activity) for p in pairs],
                "l": [_key(p.learner) for p in pairs],
            },
        )
        for r in result:
            if r.activity_id == OVERALL:
                continue
            change = changes.setdefault(r.activity_key, ActivityChange(r.activity_id))
            change.started -= 1
            change.completed -= r.completed
            change.duration -= r.duration_seconds
    # Every statement left by the learners concerned, found through the filter index, but
    # those the worker has still to fold (it will add them on top of what is rebuilt here).
    sources = await conn.execute(
        text("""
        SELECT DISTINCT ON (s.seq) s.seq, s.statement
          FROM unnest(CAST(:learners AS uuid[])) AS k(l)
          JOIN statement_index i ON i.store_id = :store AND i.key = k.l AND NOT i.related
          JOIN statements s ON s.store_id = i.store_id AND s.seq = i.seq
         WHERE NOT s.voided
           AND s.seq NOT IN (SELECT unnest(q.seqs) FROM rollup_queue q WHERE q.store_id = :store)
    """),
        {"store": store_id, "learners": sorted({index_key("agent", k.learner) for k in keys})},
    )
    left = [row for src in sources for row in contributions(src.statement, settings)]
    rebuilt = merged([row for row in left if row.key in touched])
    await _upsert_hourly(conn, store_id, HourlyRows.of(rebuilt), zone)
    kept = [r for r in left if per_learner(r) in touched_progress]
    await _upsert_progress(conn, store_id, ProgressRows.of(merged(kept, per_learner)), changes)
    still = {(r.hour, _key(r.learner)) for r in rebuilt if r.activity == OVERALL}
    emptied = [
        Presence(r.hour, r.learner_key, -1) for r in old_overall if (r.hour, r.learner_key) not in still
    ]
    totals = [Total(r.hour, -r.statements, -r.completions, -r.duration_seconds) for r in old_overall] + [
        Total.of(r) for r in rebuilt if r.activity == OVERALL
    ]
    await _change_periods(conn, store_id, zone, emptied, totals)
    if emptied:
        await conn.execute(
            text("""
            DELETE FROM analytics_presence p
             USING analytics_zone z
             WHERE p.store_id = :store AND z.store_id = :store AND p.hours <= 0
               AND (p.kind, p.period, p.learner_key) IN (
                   SELECT k.kind, analytics_period_of(k.kind, u.hour AT TIME ZONE z.zone), u.learner
                     FROM unnest(CAST(:hours AS timestamptz[]), CAST(:learners AS uuid[]))
                          AS u(hour, learner),
                          (VALUES ('day'), ('week'), ('month'), ('cell')) AS k(kind))
            """),
            {
                "store": store_id,
                "hours": [e.hour for e in emptied],
                "learners": [e.learner_key for e in emptied],
            },
        )
    await _forget_emptied(conn, store_id, keys, merged(kept))


async def _forget_emptied(
    conn: AsyncConnection, store_id: int, touched: list[HourKey], kept: list[Row]
) -> None:
    """Delete what taking statements out left behind with nothing in it, as a recount would
    not have it: the month rows of learners none of whose statements ``kept`` (every one
    left of theirs, but those the worker has still to fold, which add their months as they
    are folded) falls in a month of the hours ``touched``, and the months' and periods'
    figures left at no statement."""

    def columns(rows: Iterable[HourKey]) -> tuple[list[uuid.UUID], list[datetime], list[uuid.UUID]]:
        listed = list(rows)
        return [_key(k.activity) for k in listed], [k.hour for k in listed], [_key(k.learner) for k in listed]

    ta, th, tl = columns(touched)
    ka, kh, kl = columns(r.key for r in kept)
    await conn.execute(
        text("""
        WITH z AS (SELECT zone FROM analytics_zone WHERE store_id = :store),
        touched AS (
            SELECT u.a, u.h, u.l, analytics_period_of('month', u.h AT TIME ZONE z.zone) AS month
              FROM unnest(CAST(:ta AS uuid[]), CAST(:th AS timestamptz[]), CAST(:tl AS uuid[]))
                   AS u(a, h, l), z
        ), learners AS (
            DELETE FROM analytics_month_learners
             WHERE store_id = :store AND (activity_key, month, learner_key) IN (
                   SELECT a, month, l FROM touched WHERE a <> '00000000-0000-0000-0000-000000000000'
                   EXCEPT
                   SELECT u.a, analytics_period_of('month', u.h AT TIME ZONE z.zone), u.l
                     FROM unnest(CAST(:ka AS uuid[]), CAST(:kh AS timestamptz[]), CAST(:kl AS uuid[]))
                          AS u(a, h, l), z)
        ), months AS (
            DELETE FROM analytics_activity_months
             WHERE store_id = :store AND statements = 0
               AND (activity_key, month) IN (
                   SELECT a, month FROM touched WHERE a <> '00000000-0000-0000-0000-000000000000')
        )
        DELETE FROM analytics_period
         WHERE store_id = :store AND learners = 0 AND statements = 0
           AND (kind, period) IN (
               SELECT k.kind, analytics_period_of(k.kind, t.h AT TIME ZONE z.zone)
                 FROM touched t, z, (VALUES ('day'), ('week'), ('month'), ('cell')) AS k(kind)
                WHERE t.a = '00000000-0000-0000-0000-000000000000')
        """),
        {"store": store_id, "ta": ta, "th": th, "tl": tl, "ka": ka, "kh": kh, "kl": kl},
    )


# The store-wide period figures in `:zone`, counted again from the hourly rollup.
_RECOUNT_PRESENCE = text("""
INSERT INTO analytics_presence (store_id, kind, period, learner_key, hours)
SELECT CAST(:store AS bigint), k.kind, analytics_period_of(k.kind, h.hour AT TIME ZONE :zone),
       h.learner_key, count(*)
  FROM analytics_hourly h, (VALUES ('day'), ('week'), ('month'), ('cell')) AS k(kind)
 WHERE h.store_id = :store AND h.activity_key = '00000000-0000-0000-0000-000000000000'
 GROUP BY 1, 2, 3, 4
""")
_RECOUNT_PERIODS = text("""
INSERT INTO analytics_period (store_id, kind, period, learners, statements, completions, duration_seconds)
SELECT CAST(:store AS bigint), k.kind, analytics_period_of(k.kind, h.hour AT TIME ZONE :zone),
       count(DISTINCT h.learner_key), sum(h.statements), sum(h.completions), sum(h.duration_seconds)
  FROM analytics_hourly h, (VALUES ('day'), ('week'), ('month'), ('cell')) AS k(kind)
 WHERE h.store_id = :store AND h.activity_key = '00000000-0000-0000-0000-000000000000'
 GROUP BY 1, 2, 3
""")

_RECOUNT_MONTH_LEARNERS = text("""
INSERT INTO analytics_month_learners (store_id, activity_key, month, learner_key)
SELECT DISTINCT CAST(:store AS bigint), h.activity_key,
       analytics_period_of('month', h.hour AT TIME ZONE :zone), h.learner_key
  FROM analytics_hourly h
 WHERE h.store_id = :store AND h.activity_key <> '00000000-0000-0000-0000-000000000000'
""")
_RECOUNT_ACTIVITY_MONTHS = text("""
INSERT INTO analytics_activity_months
       (store_id, activity_key, month, statements, completions, duration_seconds)
SELECT CAST(:store AS bigint), h.activity_key, analytics_period_of('month', h.hour AT TIME ZONE :zone),
       sum(h.statements), sum(h.completions), sum(h.duration_seconds)
  FROM analytics_hourly h
 WHERE h.store_id = :store AND h.activity_key <> '00000000-0000-0000-0000-000000000000'
 GROUP BY 1, 2, 3
""")
# An activity's learners, completers and time, counted again from its progress rows.
_RECOUNT_ACTIVITIES = text("""
INSERT INTO analytics_activity
       (store_id, activity_key, activity_id, learners_started, learners_completed, duration_seconds)
SELECT CAST(:store AS bigint), p.activity_key, min(p.activity_id), count(*), count(p.completed_at),
       sum(p.duration_seconds)
  FROM analytics_progress p
 WHERE p.store_id = :store AND p.activity_key <> '00000000-0000-0000-0000-000000000000'
 GROUP BY p.activity_key
""")
# Kept in the store's recorded zone, and counted again from the hourly rollup in another.
_ZONED = {
    "analytics_presence": _RECOUNT_PRESENCE,
    "analytics_period": _RECOUNT_PERIODS,
    "analytics_month_learners": _RECOUNT_MONTH_LEARNERS,
    "analytics_activity_months": _RECOUNT_ACTIVITY_MONTHS,
}


async def rezone(conn: AsyncConnection, store_id: int, zone: str) -> None:
    """Keep the store's period figures in ``zone`` from now on, recounting them from the
    hourly rollup (nothing to do when they are kept in it already)."""
    if await recorded_zone(conn, store_id) == zone:
        return
    # Whoever adds to the hourly rollup (the worker, or a store's own writers when it keeps
    # figures in the write transaction) does so before the periods: waiting for them here
    # means none can count a period in the old zone after this recount.
    await take_fold_lock(conn, wait=True)
    await conn.execute(text("LOCK TABLE analytics_hourly IN SHARE MODE"))
    await conn.execute(
        text(
            "INSERT INTO analytics_zone (store_id, zone) VALUES (:s, :zone)"
            " ON CONFLICT (store_id) DO UPDATE SET zone = EXCLUDED.zone"
        ),
        {"s": store_id, "zone": zone},
    )
    for table, recount in _ZONED.items():
        await conn.execute(text(f"DELETE FROM {table} WHERE store_id = :s"), {"s": store_id})
        await conn.execute(recount, {"store": store_id, "zone": zone})


# Held (for the transaction) by whoever changes rollups of stores that are folded by the
# worker: the fold itself, a rebuild, a recount in another zone. One at a time, whichever
# process runs it.
FOLD_LOCK = 0x4C_52_53_46_4F_4C_44  # "LRSFOLD"


async def take_fold_lock(conn: AsyncConnection, *, wait: bool) -> bool:
    """The fold lock for this transaction; without ``wait``, False when another holds it."""
    if wait:
        await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": FOLD_LOCK})
        return True
    got = await conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": FOLD_LOCK})
    return bool(got.scalar_one())


async def enqueue(
    conn: AsyncConnection, store_id: int, seqs: list[int], voided: list[uuid.UUID], stored: datetime
) -> None:
    """Leave a write transaction's statements for the worker to fold (one row per transaction)."""
    if not seqs and not voided:
        return
    await conn.execute(
        text(
            "INSERT INTO rollup_queue (store_id, stored, seqs, voided)"
            " VALUES (:store, :stored, CAST(:seqs AS bigint[]), CAST(:voided AS uuid[]))"
        ),
        {"store": store_id, "stored": stored, "seqs": seqs, "voided": voided},
    )


@dataclass(frozen=True)
class Pending:
    """One write transaction's statements, not yet folded."""

    store_id: int
    id: int
    seqs: list[int]
    voided: list[uuid.UUID]


# The oldest queue rows holding about :statements statements (at least one row). A row is
# one write transaction: a single statement or a batch of hundreds, so the rows are counted
# by the statements they hold, not by a fixed number (100 rows were 100 single statements,
# a tenth of a fold).
_OLDEST = (
    "SELECT id FROM ("
    " SELECT id, sum(statements) OVER (ORDER BY id) - statements AS before"
    " FROM rollup_queue WHERE id > :after ORDER BY id LIMIT :statements"
    ") oldest WHERE before < :statements"
)


@dataclass(frozen=True)
class Batch:
    """Queue rows to fold together, and whether the queue held more behind them."""

    rows: list[Pending]
    more: bool


async def pending(conn: AsyncConnection, statements: int) -> Batch:
    """The oldest queue rows, about ``statements`` statements' worth (at least one row),
    locked until this transaction ends."""
    rows = await conn.execute(
        text(
            "SELECT store_id, id, seqs, voided FROM rollup_queue"
            f" WHERE id IN ({_OLDEST}) ORDER BY id FOR UPDATE SKIP LOCKED"
        ),
        {"after": 0, "statements": statements},
    )
    return _up_to(rows, statements)


async def peek(conn: AsyncConnection, after: int, statements: int) -> Batch:
    """The queue rows after queue id ``after`` that the next ``pending`` will take, as far
    as can be told now: read without locking them."""
    rows = await conn.execute(
        text(f"SELECT store_id, id, seqs, voided FROM rollup_queue WHERE id IN ({_OLDEST}) ORDER BY id"),
        {"after": after, "statements": statements},
    )
    return _up_to(rows, statements)


def _up_to(rows: Any, statements: int) -> Batch:
    taken: list[Pending] = []
    count = 0
    for r in rows:
        if taken and count + len(r.seqs) > statements:
            return Batch(taken, more=True)
        taken.append(Pending(r.store_id, r.id, list(r.seqs), list(r.voided)))
        count += len(r.seqs)
    # A batch of exactly ``statements`` may have had more behind it, unread.
    return Batch(taken, more=count >= statements)


@dataclass(frozen=True)
class Computed:
    """A store's part of a queue batch, computed before the fold's transaction: the rows it
    was computed from (seq and row version, so that a statement voided or redacted since is
    noticed), the settings it was computed under, and what they add."""

    versions: list[tuple[int, str]]
    settings: StoreSettings
    adds: Added


_VERSIONS = text(
    "SELECT seq, xmin::text AS version FROM statements"
    " WHERE store_id = :s AND seq = ANY(CAST(:seqs AS bigint[])) AND NOT voided ORDER BY seq"
)


@dataclass(frozen=True)
class Unparsed:
    """Statements read for a fold ahead of its transaction: (seq, row version) and texts."""

    versions: list[tuple[int, str]]
    docs: list[str]


async def read_statements(conn: AsyncConnection, store_id: int, seqs: list[int]) -> Unparsed:
    """The statements among ``seqs`` a fold counts (not voided), in seq order."""
    rows = (
        await conn.execute(
            text(
                "SELECT seq, xmin::text AS version, statement::text AS doc FROM statements"
                " WHERE store_id = :s AND seq = ANY(CAST(:seqs AS bigint[])) AND NOT voided ORDER BY seq"
            ),
            {"s": store_id, "seqs": seqs},
        )
    ).all()
    return Unparsed([(r.seq, r.version) for r in rows], [r.doc for r in rows])


def computed(read: Unparsed, settings: StoreSettings) -> Computed:
    """What the statements read add (pure, CPU-bound: run it off the event loop)."""
    return Computed(read.versions, settings, _parsed_added(read.docs, settings))


async def fold(
    conn: AsyncConnection,
    store_id: int,
    seqs: list[int],
    voided: list[uuid.UUID],
    settings: StoreSettings,
    zone: str,
    ahead: Computed | None = None,
) -> bool:
    """Fold stored statements (by seq) into the rollups, then take out what was voided.

    A statement voided since it was stored is passed by: the voiding's own queue row (never
    earlier than this one) rebuilds what it touched. ``ahead``: the same statements computed
    before this transaction, used when they and the settings are still as they were then.
    Returns whether it was.
    """
    if ahead is not None and ahead.settings == settings:
        versions = [(r.seq, r.version) for r in await conn.execute(_VERSIONS, {"s": store_id, "seqs": seqs})]
        if versions == ahead.versions:
            await write_added(conn, store_id, ahead.adds, zone)
            await recompute_voided(conn, store_id, voided, settings, zone)
            return True
    read = await read_statements(conn, store_id, seqs)
    await write_added(conn, store_id, _parsed_added(read.docs, settings), zone)
    await recompute_voided(conn, store_id, voided, settings, zone)
    return False


async def done(conn: AsyncConnection, taken: list[Pending]) -> None:
    """Remove folded rows, in the transaction that folded them: each is counted once."""
    await conn.execute(
        text("DELETE FROM rollup_queue WHERE id = ANY(CAST(:ids AS bigint[]))"),
        {"ids": [p.id for p in taken]},
    )


ROLLUP_TABLES = (
    "analytics_names",
    "analytics_hourly",
    "analytics_children",
    "analytics_progress",
    "analytics_activity",
    "analytics_presence",
    "analytics_period",
    "analytics_month_learners",
    "analytics_activity_months",
    "analytics_zone",
)


# A rebuild's rows, batch by batch, as they are computed: appended only, and added up once
# at its end (`rebuild` says why). `ord` is the order they came in, which the progress rows'
# latest name, groups and rating depend on. Each table is split in parts by ranges of the
# activity key, added up and emptied one at a time, in key order: sorting them needs the
# room of a part on disk, not of the whole (at 10,000,000 statements the rows took 22 GB),
# and the rollups' indexes are then filled from left to right, a page at a time, not all
# over at once (split by learner instead, the hourly rows of 10M statements took 7.6
# minutes to add up, against 5.3).
REBUILD_BATCH = 2000  # statements read, parsed and appended at a time
_REBUILD_BOUNDS = [  # sixteen parts, by the key's first hexadecimal digit
    "MINVALUE",
    *(f"'{digit:x}0000000-0000-0000-0000-000000000000'" for digit in range(1, 16)),
    "MAXVALUE",
]

# Added up as `_UPSERT_HOURLY` folds a contribution into a stored row.
_FINISH_HOURLY = """
INSERT INTO analytics_hourly
       (store_id, activity_key, hour, learner_key, statements, completions, first_at, last_at,
        completed_at, passed, failed, best_score, duration_seconds, sessions, abandoned)
SELECT CAST(:store AS bigint), activity_key, hour, learner_key, sum(statements),
       sum(completions), min(first_at), max(last_at), min(completed_at), bool_or(passed),
       bool_or(failed), max(best_score), sum(duration_seconds), sum(sessions), sum(abandoned)
  FROM {part}
 GROUP BY activity_key, hour, learner_key
 ORDER BY activity_key, hour, learner_key
"""
# Added up as `_UPSERT_PROGRESS` adds them one after another: the rating of the latest
# rating_at (the later row on a tie); the groups of the latest last_at; the name given by the
# last row that carried one and whose last_at was at least that of every row before it (the
# rows the upsert lets change the name).
_LATEST_RATING = "ORDER BY rating_at DESC NULLS LAST, ord DESC))[1]"
_FINISH_PROGRESS = f"""
INSERT INTO analytics_progress
       (store_id, activity_key, learner_key, activity_id, learner, learner_name, groups,
        statements, completions, first_at, last_at, completed_at, passed, failed, best_score,
        duration_seconds, sessions, abandoned, rating_at, rating_scaled, rating_raw, rating_min,
        rating_max, rating_response, was_completed)
SELECT CAST(:store AS bigint), activity_key, learner_key, min(activity_id), min(learner),
       (array_agg(learner_name ORDER BY ord DESC) FILTER (
            WHERE learner_name IS NOT NULL AND (before_at IS NULL OR last_at >= before_at)))[1],
       (array_agg(groups ORDER BY last_at DESC NULLS LAST, ord DESC))[1],
       sum(statements), sum(completions), min(first_at), max(last_at), min(completed_at),
       bool_or(passed), bool_or(failed), max(best_score), sum(duration_seconds), sum(sessions),
       sum(abandoned),
       (array_agg(rating_at {_LATEST_RATING}, (array_agg(rating_scaled {_LATEST_RATING},
       (array_agg(rating_raw {_LATEST_RATING}, (array_agg(rating_min {_LATEST_RATING},
       (array_agg(rating_max {_LATEST_RATING}, (array_agg(rating_response {_LATEST_RATING},
       false
  FROM (SELECT p.*, max(last_at) OVER (PARTITION BY activity_key, learner_key ORDER BY ord
                                       ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before_at
          FROM {{part}} p) p
 GROUP BY activity_key, learner_key
 ORDER BY activity_key, learner_key
"""
_REBUILT = {  # stage: (table, how its rows are added up)
    "fold_hourly": ("rebuild_hourly", _FINISH_HOURLY),
    "fold_progress": ("rebuild_progress", _FINISH_PROGRESS),
}


async def rebuild(
    conn: AsyncConnection,
    store_id: int,
    settings: StoreSettings,
    zone: str,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Recompute a store's rollups from its statements (after its verb sets change).
    ``progress`` is told how many statements are counted after each batch is written.

    Run it in a REPEATABLE READ transaction begun after FOLD_LOCK was granted: the
    statements it counts and the queue rows it drops are then the same set, whatever commits
    meanwhile (those stay queued), and no fold changes the rows it replaces.

    Batch by batch it only appends each batch's rows to temporary tables, and adds them up
    into the rollups once, at its end, set-based, in key order. Upserting every batch made it
    slow down as it went (bench/results/rebuild-10m.md): in one transaction each update of a
    row leaves its old version in place until the commit and each later upsert of the row
    walks them all, and the rollups' indexes outgrew the cache under keys arriving at random.
    """
    await conn.execute(text("DELETE FROM rollup_queue WHERE store_id = :s"), {"s": store_id})
    for table in ROLLUP_TABLES:
        await conn.execute(text(f"DELETE FROM {table} WHERE store_id = :s"), {"s": store_id})
    for stage, (table, _) in _REBUILT.items():
        await conn.execute(
            text(
                f"CREATE TEMPORARY TABLE {table} ({_defined(stage)}, ord bigint GENERATED ALWAYS AS IDENTITY)"
                " PARTITION BY RANGE (activity_key) ON COMMIT DROP"
            )
        )
        for n, (low, high) in enumerate(itertools.pairwise(_REBUILD_BOUNDS)):
            await conn.execute(
                text(
                    f"CREATE TEMPORARY TABLE {table}_{n} PARTITION OF {table}"
                    f" FOR VALUES FROM ({low}) TO ({high})"
                )
            )
    after, count = 0, 0
    named: Names = {}
    # Each batch is parsed and computed in a thread while the batch before it is written.
    computing: asyncio.Future[Added] | None = None
    while True:
        rows = (
            await conn.execute(
                text(
                    "SELECT seq, statement::text AS doc FROM statements WHERE store_id = :s"
                    " AND NOT voided AND seq > :after ORDER BY seq LIMIT :n"
                ),
                {"s": store_id, "after": after, "n": REBUILD_BATCH},
            )
        ).all()
        following = in_fold_thread(_parsed_added, [r.doc for r in rows], settings)
        if computing is not None:
            try:
                found = await computing
                await _write_children(conn, store_id, found.pairs)
                await _append(conn, "fold_hourly", found.hours.rows)
                await _append(conn, "fold_progress", found.learners.rows)
            except BaseException:
                following.cancel()
                raise
            for key, (activity, name) in found.named.items():
                _rename(named, key, activity, name)
            if progress is not None:
                progress(count)
        if not rows:
            await following
            break
        computing = following
        after, count = rows[-1].seq, count + len(rows)
    if count:
        await conn.execute(text("SET LOCAL work_mem = '64MB'"))  # a sort of a part at a time
        for table, finish in _REBUILT.values():
            for n in range(len(_REBUILD_BOUNDS) - 1):
                await conn.execute(text(finish.replace("{part}", f"{table}_{n}")), {"store": store_id})
                # Created in this transaction, the part is emptied in place: its room is free
                # at once for the next part's sort.
                await conn.execute(text(f"TRUNCATE {table}_{n}"))
        await _write_names(conn, store_id, named)
        await conn.execute(
            text("INSERT INTO analytics_zone (store_id, zone) VALUES (:store, :zone)"),
            {"store": store_id, "zone": zone},
        )
        for recount in (*_ZONED.values(), _RECOUNT_ACTIVITIES):
            await conn.execute(recount, {"store": store_id, "zone": zone})
        # The statistics the planner reads would otherwise still describe the old rows until
        # autovacuum runs after the commit: on a store rebuilt from empty at 10,000,000
        # statements, a course's day series was planned for 959 hourly rows, read 99,392,
        # and its hash table spilled to disk. ANALYZE counts this transaction's own rows.
        for table in ROLLUP_TABLES:
            await conn.execute(text(f"ANALYZE {table}"))
    return count


async def _append(conn: AsyncConnection, stage: str, rows: list[tuple[Any, ...]]) -> None:
    """Append a batch's rows (as ``_STAGES[stage]``) to the rebuild's table for them."""
    if rows:
        await copy_rows(conn, _REBUILT[stage][0], [name for name, _ in _STAGES[stage]], rows)


# One thread computes batches off the event loop. One, not a pool: each thread that
# allocates gets a malloc arena of its own, and the memory it frees stays with the process.
_FOLD_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lrs-fold")


def in_fold_thread(fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
    """Run ``fn(*args)`` in the fold's own thread."""
    return asyncio.get_running_loop().run_in_executor(_FOLD_THREAD, _trimmed, fn, *args)


def _trimmed(fn: Callable[..., T], *args: Any) -> T:
    try:
        return fn(*args)
    finally:
        # A batch's parsed statements are freed at once, but glibc keeps the freed pages in
        # the thread's arena; handing them back lowers what the worker holds between batches
        # (the peak, while a batch is computed, stays as it is).
        _malloc_trim(0)


def _no_trim(pad: int) -> int:
    return 0


try:
    _malloc_trim: Callable[[int], int] = ctypes.CDLL("libc.so.6").malloc_trim
except (OSError, AttributeError):  # not glibc: nothing to trim
    _malloc_trim = _no_trim


def _parsed_added(docs: list[str], settings: StoreSettings) -> Added:
    return added((orjson.loads(d) for d in docs), settings)
