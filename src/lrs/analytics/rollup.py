"""What each statement adds to the analytics rollup (pure: no I/O).

The rollup has one row per (activity, hour, learner): the statements a learner made in scope
of an activity in one hour, with what those statements say about completion, passing,
scores, time and cmi5 sessions. Activity ``""`` holds every statement once, for store-wide
series. A learner's latest rating of an activity (a statement with a rating verb) is kept
apart from their scores: it is their opinion, not an achievement.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, NamedTuple

from lrs.config import StoreSettings
from lrs.xapi import cmi5
from lrs.xapi.agents import ifi_key
from lrs.xapi.durations import parse_duration
from lrs.xapi.timestamps import parse_timestamp
from lrs.xapi.validate import VOIDED_VERB

OVERALL = ""
# Analytics count statements whose timestamp falls in these years (UTC). At the ends of the
# calendar an hour has no local time in some zones, and PostgreSQL's drivers read the first
# and last instants as -infinity/infinity; such timestamps are stored but never counted.
COUNTED_YEARS = range(2, 9999)


class HourKey(NamedTuple):
    """What an hourly row is kept under."""

    activity: str
    hour: datetime
    learner: str


class LearnerKey(NamedTuple):
    """What a progress row is kept under."""

    activity: str
    learner: str


@dataclass
class Row:
    """One rollup row, or the part of it that some statements contribute."""

    activity: str
    hour: datetime
    learner: str
    name: str | None = None
    statements: int = 0
    completions: int = 0
    first_at: datetime | None = None
    last_at: datetime | None = None
    completed_at: datetime | None = None
    passed: bool = False
    failed: bool = False
    best_score: float | None = None
    duration: float = 0.0
    sessions: int = 0
    abandoned: int = 0
    rating: Rating | None = None
    groups: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> HourKey:
        return HourKey(self.activity, self.hour, self.learner)

    def add(self, other: Row) -> None:
        """Fold another contribution to the same key into this one."""
        self.statements += other.statements
        self.completions += other.completions
        self.first_at = _min(self.first_at, other.first_at)
        if self.last_at is None or (other.last_at is not None and other.last_at >= self.last_at):
            self.last_at = other.last_at
            self.groups = other.groups
            self.name = other.name or self.name
        self.completed_at = _min(self.completed_at, other.completed_at)
        self.passed = self.passed or other.passed
        self.failed = self.failed or other.failed
        if other.best_score is not None:
            self.best_score = (
                other.best_score if self.best_score is None else max(self.best_score, other.best_score)
            )
        self.duration += other.duration
        self.sessions += other.sessions
        self.abandoned += other.abandoned
        if other.rating is not None and (self.rating is None or other.rating.at >= self.rating.at):
            self.rating = other.rating


@dataclass(frozen=True)
class Rating:
    """A participant's own rating of an activity: ``scaled`` as given, else from raw, min and
    max; ``raw`` with its scale when given; and the free-text response, if any."""

    at: datetime
    scaled: float | None
    raw: float | None
    min: float | None
    max: float | None
    response: str | None

    @classmethod
    def of(cls, at: datetime, result: dict[str, Any]) -> Rating | None:
        score = result.get("score") or {}
        response = result.get("response")
        if not score and response is None:
            return None
        bounded = {"raw", "min", "max"} <= score.keys()
        return cls(
            at,
            scaled_score(result),
            float(score["raw"]) if "raw" in score else None,
            float(score["min"]) if bounded else None,
            float(score["max"]) if bounded else None,
            response,
        )


def _min(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def learners(actor: dict[str, Any]) -> list[tuple[str, str | None]]:
    """(IFI key, name) of each learner a statement's actor stands for.

    An Agent is a learner; a Group counts for each identified member; anonymous groups and
    the group itself are not learners.
    """
    if actor.get("objectType") == "Group":
        found = []
        for member in actor.get("member", ()):
            key = ifi_key(member)
            if key is not None:
                found.append((key, member.get("name")))
        return found
    key = ifi_key(actor)
    return [] if key is None else [(key, actor.get("name"))]


def scaled_score(result: dict[str, Any]) -> float | None:
    """``score.scaled``, else (raw - min) / (max - min) when all three are given."""
    score = result.get("score") or {}
    if "scaled" in score:
        return float(score["scaled"])
    if {"raw", "min", "max"} <= score.keys() and score["max"] > score["min"]:
        return float((score["raw"] - score["min"]) / (score["max"] - score["min"]))
    return None


def group_values(statement: dict[str, Any], actor: dict[str, Any]) -> dict[str, Any]:
    """The values `group_by` can use, as this statement states them."""
    context = statement.get("context") or {}
    out: dict[str, Any] = {}
    team = context.get("team")
    if team:
        out["team"] = team.get("name") or ifi_key(team)
    authority = statement.get("authority")
    if authority:
        out["authority"] = authority.get("name") or ifi_key(authority)
    account = actor.get("account")
    if isinstance(account, dict):
        out["homepage"] = account.get("homePage")
    for name in ("platform", "language"):
        if context.get(name):
            out[name] = context[name]
    extensions = context.get("extensions")
    if extensions:
        out["ext"] = {k: v for k, v in extensions.items() if isinstance(v, str | int | float | bool)}
    return out


def in_scope(statement: dict[str, Any]) -> list[str]:
    """Activities the statement is in scope of: its object, its parents and groupings."""
    found = []
    obj = statement["object"]
    if obj.get("objectType", "Activity") == "Activity":
        found.append(obj["id"])
    activities = (statement.get("context") or {}).get("contextActivities") or {}
    for kind in ("parent", "grouping"):
        for activity in activities.get(kind, ()):
            if activity["id"] not in found:
                found.append(activity["id"])
    return found


def contributions(statement: dict[str, Any], settings: StoreSettings) -> list[Row]:
    """The rollup rows one stored, non-voided statement adds to.

    Voiding statements are bookkeeping, not learning: they add nothing. In a cmi5 session
    only the session's end (``terminated``, ``abandoned``) adds time: it spans the others.
    """
    if statement["verb"]["id"] == VOIDED_VERB:
        return []
    when = parse_timestamp(statement["timestamp"])
    assert when is not None
    if when.astimezone(UTC).year not in COUNTED_YEARS:
        return []
    hour = when.replace(minute=0, second=0, microsecond=0)
    obj = statement["object"]
    object_id = obj["id"] if obj.get("objectType", "Activity") == "Activity" else None
    verb = statement["verb"]["id"]
    result = statement.get("result") or {}
    duration = parse_duration(result["duration"]) if "duration" in result else None
    session_end = verb in cmi5.SESSION_ENDS and cmi5.in_session(statement)
    if not session_end and cmi5.in_session(statement):
        duration = None
    # A rating is the learner's view of the activity: it neither completes nor scores it.
    rating = Rating.of(when, result) if object_id is not None and verb in settings.rating_verbs else None
    judged = object_id is not None and verb not in settings.rating_verbs
    completion = judged and (verb in settings.completion_verbs or result.get("completion") is True)
    passed = judged and (verb in settings.passed_verbs or result.get("success") is True)
    failed = judged and (verb in settings.failed_verbs or result.get("success") is False)
    score = scaled_score(result) if judged else None
    scope = in_scope(statement)
    rows = []
    groups = group_values(statement, statement["actor"])
    for position, (learner, name) in enumerate(learners(statement["actor"])):
        # A statement counts once, however many members its group actor has; completions
        # and time count for each learner.
        counted = int(position == 0)
        for activity in [OVERALL, *scope]:
            overall = activity == OVERALL
            on_object = overall or activity == object_id
            # Outcomes (pass, fail, score) belong to the statement's own activity only.
            outcome = on_object and not overall
            rows.append(
                Row(
                    activity=activity,
                    hour=hour,
                    learner=learner,
                    name=name,
                    statements=counted,
                    completions=int(completion and on_object),
                    first_at=when,
                    last_at=when,
                    completed_at=when if completion and on_object else None,
                    passed=passed and outcome,
                    failed=failed and outcome,
                    best_score=score if outcome else None,
                    duration=duration or 0.0,
                    sessions=int(session_end),
                    abandoned=int(session_end and verb == cmi5.ABANDONED),
                    rating=rating if outcome else None,
                    groups=groups,
                )
            )
    return rows


def hourly(row: Row) -> HourKey:
    return row.key


def per_learner(row: Row) -> LearnerKey:
    return LearnerKey(row.activity, row.learner)


def merged(rows: list[Row], key: Callable[[Row], Hashable] = hourly) -> list[Row]:
    """One row per key, in key order (so concurrent writers lock rows in the same order).

    The rows given are left as they are, so one list can be merged by several keys.
    """
    by_key: dict[Any, Row] = {}
    copied: set[Any] = set()  # a row is copied only once another folds into it
    for row in rows:
        k = key(row)
        first = by_key.get(k)
        if first is None:
            by_key[k] = row
            continue
        if k not in copied:
            first = by_key[k] = replace(first)
            copied.add(k)
        first.add(row)
    return [by_key[k] for k in sorted(by_key)]


def children(statement: dict[str, Any]) -> list[tuple[str, str]]:
    """(parent, child) activity pairs the statement shows: its object under each parent."""
    obj = statement["object"]
    if obj.get("objectType", "Activity") != "Activity":
        return []
    parents = ((statement.get("context") or {}).get("contextActivities") or {}).get("parent", ())
    return [(p["id"], obj["id"]) for p in parents if p["id"] != obj["id"]]


def names(statement: dict[str, Any]) -> list[tuple[str, dict[str, str]]]:
    """(activity, name) for every activity the statement names: its object and its context
    activities, where they carry ``definition.name``."""
    found = []
    obj = statement["object"]
    if obj.get("objectType", "Activity") == "Activity" and (obj.get("definition") or {}).get("name"):
        found.append((obj["id"], obj["definition"]["name"]))
    for activities in ((statement.get("context") or {}).get("contextActivities") or {}).values():
        for activity in activities:
            if (activity.get("definition") or {}).get("name"):
                found.append((activity["id"], activity["definition"]["name"]))
    return found
