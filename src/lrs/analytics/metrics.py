"""Metrics from rollup rows (pure): statistics, grouping, privacy suppression, CSV rows."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from lrs.analytics.reads import ActivitySummary, Cell, GroupFigures, LearnerProgress, Period, Reach
from lrs.xapi.errors import BadRequest
from lrs.xapi.timestamps import format_timestamp

GROUP_BY = ("team", "authority", "homepage")
MAX_PERIODS = 5000


def check_group_by(group_by: str | None) -> None:
    if group_by is None or group_by in GROUP_BY:
        return
    if group_by.startswith("extension:") and len(group_by) > len("extension:"):
        return
    raise BadRequest(f"group_by: must be one of {', '.join(GROUP_BY)} or extension:<IRI>, got {group_by!r}")


def completion(
    activity: str, groups: list[GroupFigures], group_by: str | None, min_group: int
) -> dict[str, Any]:
    """Completion, pass, score and time figures for each group of learners."""
    if group_by is None and not groups:
        groups = [GroupFigures(None, 0, 0, 0, 0, 0, None, (None, None, None), 0.0, None, None, None)]
    out, suppressed = [], 0
    for figures in sorted(groups, key=lambda g: (g.group is None, str(g.group))):
        if 0 < figures.started < min_group:
            suppressed += 1
            continue
        out.append(_completion_row(figures))
    return {"activity": activity, "groups": out, "suppressed_groups": suppressed}


def _completion_row(g: GroupFigures) -> dict[str, Any]:
    judged = g.passed + g.failed
    p25, median, p75 = g.score_quartiles
    return {
        "group": g.group,
        "learners_started": g.started,
        "learners_completed": g.completed,
        "completion_rate": g.completed / g.started if g.started else None,
        "learners_passed": g.passed,
        "learners_failed": g.failed,
        "pass_rate": g.passed / judged if judged else None,
        "score": {"n": g.scores, "mean": g.score_mean, "median": median, "p25": p25, "p75": p75},
        "time_spent_seconds": {"total": g.time_total, "mean": g.time_mean, "median": g.time_median},
        "median_time_to_complete_seconds": g.time_to_complete_median,
    }


def periods(start: datetime, end: datetime, interval: str) -> list[datetime]:
    """Every period start from the one holding ``start`` to the one holding ``end``."""
    out = []
    current = truncate(start, interval)
    while current <= end:
        out.append(current)
        current = advance(current, interval)
    return out


def truncate(moment: datetime, interval: str) -> datetime:
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if interval == "week":
        return day - timedelta(days=day.weekday())
    if interval == "month":
        return day.replace(day=1)
    return day


def advance(moment: datetime, interval: str) -> datetime:
    if interval == "day":
        return moment + timedelta(days=1)
    if interval == "week":
        return moment + timedelta(days=7)
    return (moment.replace(day=28) + timedelta(days=4)).replace(day=1)


def engagement(
    rows: list[Period],
    interval: str,
    tz: ZoneInfo,
    since: datetime | None,
    until: datetime | None,
    min_group: int,
) -> dict[str, Any]:
    """A series with every period in range; periods with 1..min-1 learners are suppressed."""
    found = {r.start: r for r in rows}
    starts = [r.start for r in rows]
    first = since.astimezone(tz).replace(tzinfo=None) if since else min(starts, default=None)
    last = (
        (until - timedelta(microseconds=1)).astimezone(tz).replace(tzinfo=None)
        if until
        else max(starts, default=None)
    )
    local = periods(first, last, interval) if first is not None and last is not None else []
    if len(local) > MAX_PERIODS:
        raise BadRequest(
            f"the series would have {len(local)} periods; narrow it with since and "
            f"until, or use a longer interval (at most {MAX_PERIODS})"
        )
    series, suppressed = [], 0
    for start in local:
        row = found.get(start)
        if row is not None and 0 < row.active_learners < min_group:
            suppressed += 1
            continue
        series.append(
            {
                "period": start.date().isoformat(),
                "active_learners": row.active_learners if row else 0,
                "statements": row.statements if row else 0,
                "completions": row.completions if row else 0,
                "time_spent_seconds": row.duration if row else 0.0,
            }
        )
    return {"interval": interval, "tz": tz.key, "series": series, "suppressed_groups": suppressed}


def hours(cells: list[Cell], tz: ZoneInfo, min_group: int) -> dict[str, Any]:
    found = {(c.weekday, c.hour): c for c in cells}
    out, suppressed = [], 0
    for weekday in range(7):
        for hour in range(24):
            cell = found.get((weekday, hour))
            if cell is not None and 0 < cell.active_learners < min_group:
                suppressed += 1
                continue
            out.append(
                {
                    "weekday": weekday,
                    "hour": hour,
                    "statements": cell.statements if cell else 0,
                    "active_learners": cell.active_learners if cell else 0,
                }
            )
    return {"tz": tz.key, "cells": out, "suppressed_groups": suppressed}


def dropoff(parent: str, steps: list[tuple[Reach, str | None]], min_group: int) -> dict[str, Any]:
    """Child activities in the order learners take them: by the median time from a learner's
    start on the parent to their first statement on the child."""
    ranked, suppressed = [], 0
    for reached, name in steps:
        if reached.learners < min_group:
            suppressed += 1
            continue
        ranked.append(
            (
                reached.median_offset,
                reached.activity,
                {
                    "activity": reached.activity,
                    "name": name,
                    "learners_reached": reached.learners,
                    "learners_completed": reached.completed,
                },
            )
        )
    ranked.sort(key=lambda item: (item[0], item[1]))
    return {"activity": parent, "steps": [step for _, _, step in ranked], "suppressed_groups": suppressed}


def learner_status(row: LearnerProgress) -> str:
    if row.passed:
        return "passed"
    if row.failed:
        return "failed"
    if row.completed_at is not None:
        return "completed"
    return "in_progress"


def learners(rows: list[LearnerProgress]) -> list[dict[str, Any]]:
    return [
        {
            "learner": r.learner,
            "name": r.name,
            "status": learner_status(r),
            "score": r.best_score,
            "time_spent_seconds": r.duration,
            "first_seen": format_timestamp(r.first_at),
            "last_seen": format_timestamp(r.last_at),
        }
        for r in sorted(rows, key=lambda r: r.learner)
    ]


SORTS = ("learners_started", "learners_completed", "completion_rate", "time_spent_seconds", "activity")


def activities(
    summaries: list[ActivitySummary],
    sort: str,
    descending: bool,
    limit: int,
    offset: int,
    min_group: int,
) -> dict[str, Any]:
    """One page of the activity list; names are left None for the caller to fill in for
    the page only."""
    rows: list[dict[str, Any]] = []
    suppressed = 0
    for s in summaries:
        if s.learners_started < min_group:
            suppressed += 1
            continue
        rows.append(
            {
                "activity": s.activity,
                "name": None,
                "learners_started": s.learners_started,
                "learners_completed": s.learners_completed,
                "completion_rate": s.learners_completed / s.learners_started,
                "time_spent_seconds": s.duration,
            }
        )
    # Ties are broken by activity id, ascending whichever way the metric is sorted.
    rows.sort(key=lambda r: r["activity"])
    rows.sort(key=lambda r: r[sort], reverse=descending)
    return {"activities": rows[offset : offset + limit], "total": len(rows), "suppressed_groups": suppressed}


def flatten(row: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def to_csv(rows: Iterable[dict[str, Any]]) -> str:
    flat = [flatten(r) for r in rows]
    buffer = io.StringIO()
    if flat:
        writer = csv.DictWriter(buffer, fieldnames=list(flat[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(flat)
    return buffer.getvalue()
