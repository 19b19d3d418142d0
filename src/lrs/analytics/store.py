"""The analytics module's own SQL: keeping the rollup, and reading it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from lrs.analytics.rollup import OVERALL, Row, children, contributions, merged
from lrs.config import StoreSettings
from lrs.jsontext import dumps
from lrs.xapi.statements import AGENT, index_key

_UPSERT = text("""
INSERT INTO analytics_hourly AS h
       (store_id, activity_key, hour, learner_key, activity_id, learner, learner_name,
        statements, completions, first_at, last_at, completed_at, passed, failed, best_score,
        last_score, last_score_at, duration_seconds, groups)
SELECT :store, u.* FROM unnest(
       CAST(:activity_keys AS text[]), CAST(:hours AS timestamptz[]),
       CAST(:learner_keys AS text[]), CAST(:activity_ids AS text[]), CAST(:learners AS text[]),
       CAST(:names AS text[]), CAST(:statements AS int[]), CAST(:completions AS int[]),
       CAST(:first_at AS timestamptz[]), CAST(:last_at AS timestamptz[]),
       CAST(:completed_at AS timestamptz[]), CAST(:passed AS boolean[]),
       CAST(:failed AS boolean[]), CAST(:best AS float8[]), CAST(:last_score AS float8[]),
       CAST(:last_score_at AS timestamptz[]), CAST(:duration AS float8[]),
       CAST(:groups AS jsonb[])) AS u
    ON CONFLICT (store_id, activity_key, hour, learner_key) DO UPDATE SET
       statements = h.statements + EXCLUDED.statements,
       completions = h.completions + EXCLUDED.completions,
       first_at = LEAST(h.first_at, EXCLUDED.first_at),
       completed_at = LEAST(h.completed_at, EXCLUDED.completed_at),
       passed = h.passed OR EXCLUDED.passed,
       failed = h.failed OR EXCLUDED.failed,
       best_score = GREATEST(h.best_score, EXCLUDED.best_score),
       last_score = CASE WHEN EXCLUDED.last_score_at >= h.last_score_at
                          OR h.last_score_at IS NULL THEN COALESCE(EXCLUDED.last_score,
                                                                   h.last_score)
                         ELSE h.last_score END,
       last_score_at = GREATEST(h.last_score_at, EXCLUDED.last_score_at),
       duration_seconds = h.duration_seconds + EXCLUDED.duration_seconds,
       groups = CASE WHEN EXCLUDED.last_at >= h.last_at THEN EXCLUDED.groups ELSE h.groups END,
       learner_name = CASE WHEN EXCLUDED.last_at >= h.last_at
                           THEN COALESCE(EXCLUDED.learner_name, h.learner_name)
                           ELSE h.learner_name END,
       last_at = GREATEST(h.last_at, EXCLUDED.last_at)
""")

_CHILDREN = text("""
INSERT INTO analytics_children (store_id, parent_key, child_key, child_id)
SELECT :store, u.parent, u.child, u.child_id
  FROM unnest(CAST(:parents AS text[]), CAST(:children AS text[]), CAST(:ids AS text[]))
       AS u(parent, child, child_id)
    ON CONFLICT DO NOTHING
""")


def _key(value: str) -> str:
    return index_key("", value)


async def add(
    conn: AsyncConnection, store_id: int, statements: list[dict[str, Any]], settings: StoreSettings
) -> None:
    """Fold newly stored, non-voided statements into the rollup."""
    rows = merged([row for s in statements for row in contributions(s, settings)])
    await _upsert(conn, store_id, rows)
    pairs = sorted({pair for s in statements for pair in children(s)})
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


async def _upsert(conn: AsyncConnection, store_id: int, rows: list[Row]) -> None:
    if not rows:
        return
    await conn.execute(
        _UPSERT,
        {
            "store": store_id,
            "activity_keys": [_key(r.activity) for r in rows],
            "hours": [r.hour for r in rows],
            "learner_keys": [_key(r.learner) for r in rows],
            "activity_ids": [r.activity for r in rows],
            "learners": [r.learner for r in rows],
            "names": [r.name for r in rows],
            "statements": [r.statements for r in rows],
            "completions": [r.completions for r in rows],
            "first_at": [r.first_at for r in rows],
            "last_at": [r.last_at for r in rows],
            "completed_at": [r.completed_at for r in rows],
            "passed": [r.passed for r in rows],
            "failed": [r.failed for r in rows],
            "best": [r.best_score for r in rows],
            "last_score": [r.last_score for r in rows],
            "last_score_at": [r.last_score_at for r in rows],
            "duration": [r.duration for r in rows],
            "groups": [dumps(r.groups) for r in rows],
        },
    )


async def recompute_voided(
    conn: AsyncConnection, store_id: int, voided: list[uuid.UUID], settings: StoreSettings
) -> None:
    """Rebuild every rollup row the voided statements had contributed to, without them."""
    if not voided:
        return
    rows = await conn.execute(
        text("SELECT statement FROM statements WHERE store_id = :store AND id = ANY(CAST(:ids AS uuid[]))"),
        {"store": store_id, "ids": voided},
    )
    touched = {r.key for s in rows for r in contributions(s.statement, settings)}
    if not touched:
        return
    keys = sorted(touched)
    await conn.execute(
        text(
            "DELETE FROM analytics_hourly WHERE store_id = :store AND (activity_key, hour,"
            " learner_key) IN (SELECT * FROM unnest(CAST(:a AS text[]),"
            " CAST(:h AS timestamptz[]), CAST(:l AS text[])))"
        ),
        {
            "store": store_id,
            "a": [_key(k[0]) for k in keys],
            "h": [k[1] for k in keys],
            "l": [_key(k[2]) for k in keys],
        },
    )
    # The statements left for those (learner, hour) pairs, found through the filter index.
    sources = await conn.execute(
        text("""
        SELECT DISTINCT s.seq, s.statement
          FROM unnest(CAST(:learners AS text[]), CAST(:hours AS timestamptz[])) AS k(l, h)
          JOIN statement_index i ON i.store_id = :store AND i.key = k.l AND NOT i.related
          JOIN statements s ON s.store_id = i.store_id AND s.seq = i.seq
         WHERE NOT s.voided AND s.timestamp >= k.h AND s.timestamp < k.h + interval '1 hour'
    """),
        {
            "store": store_id,
            "learners": [index_key(AGENT, k[2]) for k in keys],
            "hours": [k[1] for k in keys],
        },
    )
    rebuilt = [row for src in sources for row in contributions(src.statement, settings) if row.key in touched]
    await _upsert(conn, store_id, merged(rebuilt))


async def rebuild(conn: AsyncConnection, store_id: int, settings: StoreSettings, batch: int = 2000) -> int:
    """Recompute a store's rollup from its statements (after its verb sets change)."""
    await conn.execute(text("DELETE FROM analytics_hourly WHERE store_id = :s"), {"s": store_id})
    await conn.execute(text("DELETE FROM analytics_children WHERE store_id = :s"), {"s": store_id})
    after, count = 0, 0
    while True:
        rows = (
            await conn.execute(
                text(
                    "SELECT seq, statement::text AS doc FROM statements WHERE store_id = :s"
                    " AND NOT voided AND seq > :after ORDER BY seq LIMIT :n"
                ),
                {"s": store_id, "after": after, "n": batch},
            )
        ).all()
        if not rows:
            return count
        await add(conn, store_id, [orjson.loads(r.doc) for r in rows], settings)
        after, count = rows[-1].seq, count + len(rows)


# --- reads ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    since: datetime | None
    until: datetime | None


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
    statements: int
    group: Any  # the value of the `group_by` asked for, if any


async def progress(
    conn: AsyncConnection, store_id: int, activity: str, window: Window, group_by: str | None = None
) -> list[LearnerProgress]:
    """Each learner's progress on an activity within the window.

    Only the one grouping value asked for is read (as text, from the learner's latest row),
    so a large course costs no JSON decoding per learner.
    """
    params: dict[str, Any] = {"store": store_id, "activity": _key(activity)}
    group_sql = "NULL::text"
    if group_by is not None:
        if group_by.startswith("extension:"):
            params["ext"] = group_by.removeprefix("extension:")
            value = "groups -> 'ext' ->> :ext"
        else:
            params["group"] = group_by
            value = "groups ->> :group"
        group_sql = f"(array_agg({value} ORDER BY last_at DESC))[1]"
    rows = await conn.execute(
        text(f"""
        SELECT learner, (array_agg(learner_name ORDER BY last_at DESC)
                         FILTER (WHERE learner_name IS NOT NULL))[1] AS name,
               min(first_at) AS first_at, max(last_at) AS last_at,
               min(completed_at) AS completed_at, bool_or(passed) AS passed,
               bool_or(failed) AS failed, max(best_score) AS best_score,
               sum(duration_seconds) AS duration, sum(statements) AS statements,
               {group_sql} AS grp
          FROM analytics_hourly
         WHERE store_id = :store AND activity_key = :activity{_window_sql(window, params)}
         GROUP BY learner_key, learner
    """),
        params,
    )
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
            int(r.statements),
            r.grp,
        )
        for r in rows
    ]


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


@dataclass(frozen=True)
class Cell:
    weekday: int
    hour: int
    statements: int
    active_learners: int


async def hours(
    conn: AsyncConnection, store_id: int, activity: str | None, tz: str, window: Window
) -> list[Cell]:
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
    params: dict[str, Any] = {"store": store_id, "overall": OVERALL}
    rows = await conn.execute(
        text(f"""
        SELECT activity_id, count(*) AS started, count(*) FILTER (WHERE completed) AS completed,
               sum(duration) AS duration
          FROM (SELECT activity_id, learner_key, bool_or(completed_at IS NOT NULL) AS completed,
                       sum(duration_seconds) AS duration
                  FROM analytics_hourly
                 WHERE store_id = :store AND activity_key <> :overall
                       {_window_sql(window, params)}
                 GROUP BY activity_id, learner_key) per_learner
         GROUP BY activity_id
    """),
        params,
    )
    return [ActivitySummary(r.activity_id, r.started, r.completed, float(r.duration)) for r in rows]
