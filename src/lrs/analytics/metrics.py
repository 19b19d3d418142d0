"""Metrics from rollup rows (pure): statistics, grouping, privacy suppression, CSV rows."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar
from zoneinfo import ZoneInfo

from lrs.analytics.reads import (
    NO_FIGURES,
    ActivitySummary,
    AssignedLearner,
    AssignmentFigures,
    AssignmentStatus,
    Cell,
    Cost,
    GroupFigures,
    LearnerProgress,
    Period,
    RatingCount,
    Reach,
    Shared,
    Summed,
)
from lrs.xapi.errors import BadRequest
from lrs.xapi.timestamps import format_timestamp

T = TypeVar("T")
GROUP_BY = ("cohort", "platform", "language", "team", "authority", "homepage")
MAX_PERIODS = 5000


def check_group_by(group_by: str | None) -> None:
    if group_by is None or group_by in GROUP_BY:
        return
    if group_by.startswith("extension:") and len(group_by) > len("extension:"):
        return
    raise BadRequest(f"group_by: must be one of {', '.join(GROUP_BY)} or extension:<IRI>, got {group_by!r}")


def _group_order(group: Any) -> tuple[bool, str]:
    """Groups in order of their value; learners without one (None) last."""
    return (group is None, str(group))


def completion(
    activity: str, groups: list[GroupFigures], group_by: str | None, min_group: int
) -> dict[str, Any]:
    """Completion, pass, score and time figures for each group of learners."""
    if group_by is None and not groups:
        groups = [NO_FIGURES]
    out, suppressed = [], 0
    for figures in sorted(groups, key=lambda g: _group_order(g.group)):
        if 0 < figures.started < min_group:
            suppressed += 1
            continue
        out.append({"group": figures.group, **_completion_figures(figures)})
    return {"activity": activity, "groups": out, "suppressed_groups": suppressed}


def cost(recorded: Cost | None, totals: GroupFigures) -> dict[str, Any] | None:
    """What the activity cost, per learner who started it, per completion and per learning
    hour of the learners counted (None: no cost is recorded)."""
    if recorded is None:
        return None
    amount = float(recorded.amount)
    hours = totals.time_total / 3600

    def per(n: float) -> float | None:
        return round(amount / n, 2) if n > 0 else None

    return {
        "amount": amount,
        "currency": recorded.currency,
        "per_learner_started": per(totals.started),
        "per_completion": per(totals.completed),
        "per_learning_hour": per(hours),
    }


def _completion_figures(g: GroupFigures) -> dict[str, Any]:
    judged = g.passed + g.failed
    p25, median, p75 = g.score_quartiles
    return {
        "learners_started": g.started,
        "learners_completed": g.completed,
        "completion_rate": g.completed / g.started if g.started else None,
        "learners_passed": g.passed,
        "learners_failed": g.failed,
        "pass_rate": g.passed / judged if judged else None,
        "score": {
            "n": g.scores,
            "mean": g.score_mean,
            "median": median,
            "p25": p25,
            "p75": p75,
            # Learners whose best scaled score is below 0, then in each tenth from 0 to 1.
            "below_zero": g.score_bins[0],
            "tenths": list(g.score_bins[1:]),
        },
        "time_spent_seconds": {"total": g.time_total, "mean": g.time_mean, "median": g.time_median},
        "median_time_to_complete_seconds": g.time_to_complete_median,
        "sessions": {"total": g.sessions, "abandoned": g.abandoned},
    }


STATUSES = ("not_started", "in_progress", "completed", "passed", "failed")


def assignments(activity: str, rows: list[AssignmentFigures], min_group: int) -> dict[str, Any]:
    """Per group of assigned learners: how many have not started, are under way, have
    completed, passed, failed, are overdue; the completion rate against all assigned."""
    out, suppressed = [], 0
    for r in sorted(rows, key=lambda r: _group_order(r.group)):
        if 0 < r.assigned < min_group:
            suppressed += 1
            continue
        out.append(
            {
                "group": r.group,
                "due": format_timestamp(r.due) if r.due else None,
                "assigned": r.assigned,
                "not_started": r.not_started,
                "in_progress": r.in_progress,
                "completed": r.completed,
                "passed": r.passed,
                "failed": r.failed,
                "overdue": r.overdue,
                "completed_late": r.completed_late,
                "completion_rate": r.completed / r.assigned if r.assigned else None,
                "started": _completion_figures(r.figures),
            }
        )
    return {"activity": activity, "groups": out, "suppressed_groups": suppressed}


def assignment_status(rows: list[AssignmentStatus], min_group: int) -> dict[str, Any]:
    """Every assignment at a glance, in course then cohort order; cohorts with fewer members
    than the minimum are left out and counted."""
    out, suppressed = [], 0
    for r in sorted(rows, key=lambda r: (r.activity, r.cohort)):
        if 0 < r.assigned < min_group:
            suppressed += 1
            continue
        out.append(
            {
                "cohort": r.cohort,
                "activity": r.activity,
                "due": format_timestamp(r.due) if r.due else None,
                "assigned": r.assigned,
                "completed": r.completed,
                "completion_rate": r.completed / r.assigned if r.assigned else None,
                "overdue": r.overdue,
            }
        )
    return {"assignments": out, "suppressed_groups": suppressed}


def assigned_learners(rows: list[AssignedLearner], now: datetime) -> list[dict[str, Any]]:
    """The list a leader acts on: each assigned learner, their status and due date."""
    out = []
    for a in sorted(rows, key=lambda a: a.learner):
        p = a.progress
        done = p is not None and p.completed_at is not None
        out.append(
            {
                "learner": a.learner,
                "name": a.name,
                "status": "not_started" if p is None else learner_status(p),
                "due": format_timestamp(a.due) if a.due else None,
                "overdue": a.due is not None and a.due < now and not done,
                "completed_at": format_timestamp(p.completed_at) if p and p.completed_at else None,
                "score": p.best_score if p else None,
                "time_spent_seconds": p.duration if p else 0.0,
                "last_seen": format_timestamp(p.last_at) if p else None,
            }
        )
    return out


def feedback(
    activity: str, counts: list[RatingCount], group_by: str | None, min_group: int
) -> dict[str, Any]:
    """Per group: how many rated the activity, their mean scaled rating, and per scale the
    mean raw rating and how many gave each raw value."""
    by_group: dict[Any, list[RatingCount]] = defaultdict(list)
    for c in counts:
        by_group[c.group].append(c)
    if group_by is None and not by_group:
        by_group[None] = []
    out, suppressed = [], 0
    for group in sorted(by_group, key=_group_order):
        found = by_group[group]
        n = sum(c.learners for c in found)
        if 0 < n < min_group:
            suppressed += 1
            continue
        scaled_n = sum(c.scaled_count for c in found)
        scales: dict[tuple[float | None, float | None], list[RatingCount]] = defaultdict(list)
        for c in found:
            if c.raw is not None:
                scales[(c.min, c.max)].append(c)
        out.append(
            {
                "group": group,
                "n": n,
                "mean_scaled": sum(c.scaled_sum for c in found) / scaled_n if scaled_n else None,
                "scales": [
                    _scale(lo, hi, values)
                    for (lo, hi), values in sorted(
                        scales.items(), key=lambda item: (str(item[0][0]), str(item[0][1]))
                    )
                ],
            }
        )
    return {"activity": activity, "groups": out, "suppressed_groups": suppressed}


def _scale(lo: float | None, hi: float | None, values: list[RatingCount]) -> dict[str, Any]:
    n = sum(v.learners for v in values)
    return {
        "min": lo,
        "max": hi,
        "n": n,
        "mean_raw": sum(v.raw * v.learners for v in values if v.raw is not None) / n,
        "distribution": [
            {"raw": v.raw, "learners": v.learners} for v in sorted(values, key=lambda v: v.raw or 0.0)
        ],
    }


def feedback_rows(body: dict[str, Any]) -> list[dict[str, Any]]:
    """A feedback answer as flat rows (for CSV): one per group, scale and raw value given,
    and one per group for its totals (scale and raw empty)."""
    rows = []
    for g in body["groups"]:
        lead = {"group": g["group"], "n": g["n"], "mean_scaled": g["mean_scaled"]}
        rows.append({**lead, "min": None, "max": None, "mean_raw": None, "raw": None, "learners": g["n"]})
        for scale in g["scales"]:
            for value in scale["distribution"]:
                rows.append(
                    {
                        **lead,
                        "min": scale["min"],
                        "max": scale["max"],
                        "mean_raw": scale["mean_raw"],
                        "raw": value["raw"],
                        "learners": value["learners"],
                    }
                )
    return rows


def feedback_learners(rows: list[LearnerProgress]) -> list[dict[str, Any]]:
    return [
        {
            "learner": r.learner,
            "name": r.name,
            "rated_at": format_timestamp(r.rating.at),
            "scaled": r.rating.scaled,
            "raw": r.rating.raw,
            "min": r.rating.min,
            "max": r.rating.max,
            "response": r.rating.response,
        }
        for r in sorted(rows, key=lambda r: r.learner)
        if r.rating is not None
    ]


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
    starts: list[datetime] | None = None,
    hidden: Collection[datetime] = (),
) -> dict[str, Any]:
    """A series with every period in range; periods with 1..min-1 learners (or ``hidden``:
    withheld for another reason) are suppressed.

    Without since and until, the range runs from the first period in ``starts`` (default:
    the rows') to the last, so that every group's series covers the same periods."""
    found = {r.start: r for r in rows}
    starts = [r.start for r in rows] if starts is None else starts
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
        if row is not None and (0 < row.active_learners < min_group or start in hidden):
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


def hours(
    cells: list[Cell], tz: ZoneInfo, min_group: int, hidden: Collection[tuple[int, int]] = ()
) -> dict[str, Any]:
    """Every hour of the week; cells with 1..min-1 learners (or ``hidden``) are suppressed."""
    found = {(c.weekday, c.hour): c for c in cells}
    out, suppressed = [], 0
    for weekday in range(7):
        for hour in range(24):
            cell = found.get((weekday, hour))
            if cell is not None and (0 < cell.active_learners < min_group or (weekday, hour) in hidden):
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
    ordered, suppressed = _in_course_order(steps, min_group)
    return {
        "activity": parent,
        "steps": [
            {
                "activity": r.activity,
                "name": name,
                "learners_reached": r.learners,
                "learners_completed": r.completed,
            }
            for r, name in ordered
        ],
        "suppressed_groups": suppressed,
    }


def elements(parent: str, steps: list[tuple[Reach, str | None]], min_group: int) -> dict[str, Any]:
    """Each learning element (child activity) in course order, with what learners did there:
    which engage (reach, time) and which teach (completion, passing, scores), and how
    learners rate them."""
    ordered, suppressed = _in_course_order(steps, min_group)
    out = []
    for r, name in ordered:
        judged = r.passed + r.failed
        out.append(
            {
                "activity": r.activity,
                "name": name,
                "learners_reached": r.learners,
                "learners_completed": r.completed,
                "completion_rate": r.completed / r.learners,
                "pass_rate": r.passed / judged if judged else None,
                "score": {"n": r.scores, "mean": r.score_mean, "median": r.score_median},
                "median_time_spent_seconds": r.time_median,
                "self_assessment": {"n": r.ratings, "mean_scaled": r.rating_mean},
            }
        )
    return {"activity": parent, "elements": out, "suppressed_groups": suppressed}


def _in_course_order(
    steps: list[tuple[Reach, str | None]], min_group: int
) -> tuple[list[tuple[Reach, str | None]], int]:
    """Steps reached by at least ``min_group`` learners, by median offset (then id); and how
    many were left out."""
    shown = [(r, name) for r, name in steps if r.learners >= min_group]
    shown.sort(key=lambda step: (step[0].median_offset, step[0].activity))
    return shown, len(steps) - len(shown)


def by_group(
    rows: list[T], group_of: Callable[[T], Any], body: Callable[[list[T]], dict[str, Any]], rows_key: str
) -> dict[str, Any]:
    """``body`` for each group of rows, as ``{"groups": [{"group", rows_key}],
    "suppressed_groups"}``; what each left out adds up."""
    groups: dict[Any, list[T]] = defaultdict(list)
    for row in rows:
        groups[group_of(row)].append(row)
    out, suppressed = [], 0
    for group in sorted(groups, key=_group_order):
        answer = body(groups[group])
        suppressed += answer["suppressed_groups"]
        out.append({"group": group, rows_key: answer[rows_key]})
    return {"groups": out, "suppressed_groups": suppressed}


def group_rows(body: dict[str, Any], rows_key: str) -> list[dict[str, Any]]:
    """A grouped answer's rows, one list, each led by its group (for CSV)."""
    return [{"group": g["group"], **row} for g in body["groups"] for row in g[rows_key]]


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
    grouped: bool = False,
) -> dict[str, Any]:
    """One page of the activity list (grouped: one row per activity and group); names are
    left None for the caller to fill in for the page only."""
    rows: list[dict[str, Any]] = []
    suppressed = 0
    for s in summaries:
        if s.learners_started < min_group:
            suppressed += 1
            continue
        rows.append(
            {
                **({"group": s.group} if grouped else {}),
                "activity": s.activity,
                "name": None,
                "learners_started": s.learners_started,
                "learners_completed": s.learners_completed,
                "completion_rate": s.learners_completed / s.learners_started,
                "time_spent_seconds": s.duration,
            }
        )
    # Ties are broken by activity id (and group), ascending whichever way the metric is sorted.
    rows.sort(key=lambda r: (r["activity"], _group_order(r.get("group"))))
    rows.sort(key=lambda r: r[sort], reverse=descending)
    return {"activities": rows[offset : offset + limit], "total": len(rows), "suppressed_groups": suppressed}


# --- regions ---------------------------------------------------------------------------------


def withheld(total: int, per_store: dict[int, int], min_group: int) -> bool:
    """Whether a region's figure over ``total`` learners is suppressed: it covers fewer than
    the minimum, or a member store that subtracts its own learners from it would be left
    with between 1 and the minimum - 1 of the other members' (complementary suppression:
    no figure by subtraction)."""
    if 0 < total < min_group:
        return True
    return any(0 < total - own < min_group for own in per_store.values())


def withheld_by_largest(total: int, members: int, largest: int, min_group: int) -> bool:
    """``withheld`` from the number of members with learners and the largest one's share:
    with two or more, the largest leaves the fewest when it subtracts its own, and every
    member leaves at least one; with one, it leaves none."""
    if 0 < total < min_group:
        return True
    return members > 1 and total - largest < min_group


def region_completion(
    activity: str, shared: list[Shared], group_by: str | None, min_group: int, shown_as: dict[int, str]
) -> dict[str, Any]:
    """A region's completion figures per group (per member store: under the name the region
    shows it by)."""
    if group_by is None and not shared:
        shared = [Shared(NO_FIGURES, {})]
    out, suppressed = [], 0
    for item in sorted(shared, key=lambda s: _group_order(s.figures.group)):
        figures = item.figures
        if withheld(figures.started, item.per_store, min_group):
            suppressed += 1
            continue
        group = shown_as[int(figures.group)] if group_by == "store" else figures.group
        out.append({"group": group, **_completion_figures(figures)})
    if group_by == "store":
        out.sort(key=lambda row: str(row["group"]))
    return {"activity": activity, "groups": out, "suppressed_groups": suppressed}


def region_activities(
    summaries: list[Summed[ActivitySummary]],
    sort: str,
    descending: bool,
    limit: int,
    offset: int,
    min_group: int,
) -> dict[str, Any]:
    """The region's activity list: an activity whose figures a member could subtract its way
    into a small group is left out, as one with too few learners is."""
    shown = [
        r.figure
        for r in summaries
        if not withheld_by_largest(r.figure.learners_started, r.members, r.largest, min_group)
    ]
    body = activities(shown, sort, descending, limit, offset, min_group)
    body["suppressed_groups"] += len(summaries) - len(shown)
    return body


class _Active(Protocol):
    @property
    def active_learners(self) -> int: ...


A = TypeVar("A", bound=_Active)
K = TypeVar("K")


def summed_figures(summed: list[Summed[A]], key: Callable[[A], K], min_group: int) -> tuple[list[A], set[K]]:
    """A region's cells or periods, and the keys of those a member could subtract its way
    into (to be withheld)."""
    hidden = {
        key(s.figure)
        for s in summed
        if withheld_by_largest(s.figure.active_learners, s.members, s.largest, min_group)
    }
    return [s.figure for s in summed], hidden


def shared_steps(
    steps: list[tuple[Reach, str | None]], min_group: int
) -> tuple[list[tuple[Reach, str | None]], int]:
    """A region's steps of a course, without those a member could subtract its way into;
    and how many were withheld so."""
    kept = [s for s in steps if not withheld(s[0].learners, s[0].per_store, min_group)]
    return kept, len(steps) - len(kept)


def flatten(row: dict[Any, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        elif isinstance(value, list):
            out.update(flatten(dict(enumerate(value)), f"{prefix}{key}."))
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
