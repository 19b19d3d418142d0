"""Statements as the LRS keeps them: what it fills in, what it indexes, when two are the same."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lrs.xapi.agents import ifi_key
from lrs.xapi.errors import BadRequest
from lrs.xapi.pseudonyms import Pseudonym
from lrs.xapi.timestamps import format_timestamp, is_utc, parse_timestamp
from lrs.xapi.validate import VOIDED_VERB, validator_for
from lrs.xapi.versions import Version

# What a statement is found by: (kind, value) pairs, kind one of "agent" (the IFI key),
# "activity", "verb", "registration". How they become index keys is the store's business.
Indexed = tuple[str, str]


@dataclass
class Prepared:
    """A validated statement ready to store."""

    id: uuid.UUID
    timestamp: datetime | None
    verb_id: str
    voids: uuid.UUID | None
    refers_to: uuid.UUID | None
    timestamp_given: bool
    # What it is found by, and whether only through related_agents / related_activities
    # (False for the direct matches of `agent` / `activity`).
    index: dict[Indexed, bool] = field(default_factory=dict)
    # The ``stored`` it keeps (statements restored from an export); None: the LRS's clock.
    kept_stored: datetime | None = None
    # Its JSON as it will be stored and its index keys, when they are made before its
    # transaction (it keeps its ``stored``); None: made in the transaction.
    text: str | None = None
    keys: dict[str, bool] | None = None
    _statement: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def statement(self) -> dict[str, Any]:
        """The statement as validated (read-only by convention: the store copies to stamp it)."""
        return self._statement

    @property
    def definitions(self) -> list[tuple[str, dict[str, Any]]]:
        """Activity definitions the statement carries, for the canonical activity store: read
        only when the caller may define activities, so not made for every statement."""
        return list(_definitions(self.statement))


def prepare(
    raw: Any,
    version: Version,
    authority: dict[str, Any],
    path: str,
    statement_id: uuid.UUID | None = None,
    pseudonym: Pseudonym | None = None,
) -> Prepared:
    """Validate one statement and fill in what the LRS sets: id, authority, version; with
    ``pseudonym``, every agent in it becomes a pseudonymous account first.

    ``stored`` (and ``timestamp`` when missing) come from the database clock as it is written.
    """
    validator_for(version).statement(raw, path)
    statement: dict[str, Any] = raw if pseudonym is None else pseudonym.statement(raw)
    if statement_id is not None:
        if "id" in statement and uuid.UUID(statement["id"]) != statement_id:
            raise BadRequest(f"{path}.id: does not match the statementId parameter")
        statement["id"] = str(statement_id)
    sid = uuid.UUID(statement["id"]) if "id" in statement else uuid.uuid4()
    statement["id"] = str(sid)
    timestamp_given = "timestamp" in statement
    _context_activities_as_lists(statement)
    ts: datetime | None = None
    if timestamp_given:
        ts = parse_timestamp(statement["timestamp"])
        if version is Version.V2 and ts is not None and not is_utc(statement["timestamp"]):
            statement["timestamp"] = format_timestamp(ts)
    _convert_substatement_timestamp(statement, version)
    statement["authority"] = authority
    if "version" not in statement:
        statement["version"] = "2.0.0" if version is Version.V2 else "1.0.0"
    obj = statement["object"]
    is_ref = obj.get("objectType") == "StatementRef"
    verb_id = statement["verb"]["id"]
    prepared = Prepared(
        id=sid,
        timestamp=ts,
        verb_id=verb_id,
        voids=uuid.UUID(obj["id"]) if is_ref and verb_id == VOIDED_VERB else None,
        refers_to=uuid.UUID(obj["id"]) if is_ref else None,
        timestamp_given=timestamp_given,
        _statement=statement,
    )
    _index(prepared.index, statement, top=True)
    return prepared


def _definitions(statement: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    obj = statement["object"]
    kind = obj.get("objectType", "Activity")
    if kind == "Activity" and obj.get("definition"):
        yield obj["id"], obj["definition"]
    elif kind == "SubStatement":
        yield from _definitions(obj)
    context = statement.get("context") or {}
    for activities in context.get("contextActivities", {}).values():
        for activity in activities:
            if activity.get("definition"):
                yield activity["id"], activity["definition"]


def _context_activities_as_lists(statement: dict[str, Any]) -> None:
    """The LRS returns every contextActivities value as an array; it stores them so."""
    for holder in (statement, statement["object"]):
        context = holder.get("context")
        if isinstance(context, dict) and isinstance(context.get("contextActivities"), dict):
            ca = context["contextActivities"]
            for key, value in ca.items():
                if not isinstance(value, list):
                    ca[key] = [value]


def _convert_substatement_timestamp(statement: dict[str, Any], version: Version) -> None:
    obj = statement["object"]
    if version is Version.V2 and obj.get("objectType") == "SubStatement" and "timestamp" in obj:
        value = obj["timestamp"]
        if not is_utc(value):
            ts = parse_timestamp(value)
            assert ts is not None
            obj["timestamp"] = format_timestamp(ts)


def index_of(statement: dict[str, Any]) -> dict[Indexed, bool]:
    """What a statement is found by (as ``Prepared.index``), for one already stored."""
    index: dict[Indexed, bool] = {}
    _index(index, statement, top=True)
    return index


def _add(index: dict[Indexed, bool], key: Indexed, related: bool) -> None:
    # A direct match also satisfies the related filter, so it is kept once, as direct.
    if not related:
        index[key] = False
    else:
        index.setdefault(key, True)


def _agent_keys(agent: dict[str, Any]) -> Iterator[Indexed]:
    key = ifi_key(agent)
    if key is not None:
        yield ("agent", key)
    for member in agent.get("member", ()):
        member_key = ifi_key(member)
        if member_key is not None:
            yield ("agent", member_key)


def _index(index: dict[Indexed, bool], statement: dict[str, Any], *, top: bool) -> None:
    """Index rows for the `agent`, `activity`, `verb`, `registration` and related filters."""
    for key in _agent_keys(statement["actor"]):
        _add(index, key, related=not top)
    _add(index, ("verb", statement["verb"]["id"]), related=not top)
    obj = statement["object"]
    kind = obj.get("objectType", "Activity")
    if kind == "Activity":
        _add(index, ("activity", obj["id"]), related=not top)
    elif kind in ("Agent", "Group"):
        for key in _agent_keys(obj):
            _add(index, key, related=not top)
    elif kind == "SubStatement":
        _index(index, obj, top=False)
    context = statement.get("context")
    if context:
        if "registration" in context:
            _add(index, ("registration", context["registration"].lower()), related=not top)
        for prop in ("instructor", "team"):
            if prop in context:
                for key in _agent_keys(context[prop]):
                    _add(index, key, related=True)
        for item in context.get("contextAgents", ()):
            for key in _agent_keys(item["agent"]):
                _add(index, key, related=True)
        for item in context.get("contextGroups", ()):
            for key in _agent_keys(item["group"]):
                _add(index, key, related=True)
        for activities in context.get("contextActivities", {}).values():
            for activity in activities if isinstance(activities, list) else [activities]:
                _add(index, ("activity", activity["id"]), related=True)
    if top and "authority" in statement:
        for key in _agent_keys(statement["authority"]):
            _add(index, key, related=True)


# --- comparison -----------------------------------------------------------------------------

# Set by the LRS, so never part of what a client's copy of a statement is compared on.
_SET_BY_LRS = ("stored", "authority", "version")
_FRACTION_BEYOND_HUNDREDTHS = re.compile(r"(\.\d{2})\d+S\Z", re.ASCII)


def comparable(
    statement: dict[str, Any],
    *,
    keep_id: bool = True,
    keep_timestamp: bool = True,
    keep_attachments: bool = True,
) -> Any:
    """The statement reduced to what the spec's statement comparison looks at.

    Timestamps compare as instants, durations to the hundredth of a second, contextActivities
    values as lists and Group members as an unordered list.
    """
    dropped = set(_SET_BY_LRS)
    if not keep_id:
        dropped.add("id")
    if not keep_timestamp:
        dropped.add("timestamp")
    if not keep_attachments:
        dropped.add("attachments")
    return _normalised({k: v for k, v in statement.items() if k not in dropped})


def same_statement(stored: dict[str, Any], incoming: Prepared) -> bool:
    """Whether a statement sent again with an existing id is the one already stored.

    ``timestamp`` takes part only when the new copy carries one (else the LRS set it).
    """
    keep = incoming.timestamp_given
    return bool(
        comparable(stored, keep_id=False, keep_timestamp=keep)
        == comparable(incoming.statement, keep_id=False, keep_timestamp=keep)
    )


def _normalised(value: Any) -> Any:
    if isinstance(value, dict):
        out = {k: _normalised(v) for k, v in value.items()}
        if out.get("objectType") == "Group" and isinstance(out.get("member"), list):
            out["member"] = sorted(out["member"], key=repr)
        ca = out.get("contextActivities")
        if isinstance(ca, dict):
            out["contextActivities"] = {k: v if isinstance(v, list) else [v] for k, v in ca.items()}
        stamp = value.get("timestamp")
        if isinstance(stamp, str) and parse_timestamp(stamp) is not None:
            out["timestamp"] = parse_timestamp(stamp)
        duration = value.get("duration")
        if isinstance(duration, str):
            out["duration"] = _FRACTION_BEYOND_HUNDREDTHS.sub(r"\1S", duration)
        return out
    if isinstance(value, list):
        return [_normalised(v) for v in value]
    return value
