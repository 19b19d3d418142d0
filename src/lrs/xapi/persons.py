"""A person in statements: the identifiers they go by, the roles they have in a statement,
and a statement with them taken out (erasure under GDPR Article 17).

A statement whose actor is the person (or a Group with them as a member) is theirs and goes
as a whole. In any other statement the person is only mentioned, and redaction takes them
out while the statement keeps its id: an optional mention (instructor, team, a context agent
or group, a Group member) is dropped; where the statement needs an agent (its object, a
SubStatement's actor, the authority) the person is replaced by ``ERASED``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from lrs.xapi.agents import ifi_key
from lrs.xapi.pseudonyms import Pseudonym

# Who stands where an erased person had to be kept: an agent that names nobody.
ERASED: dict[str, Any] = {
    "objectType": "Agent",
    "account": {"homePage": "urn:lrs:erased", "name": "erased"},
}

# The roles a person can have in a statement, as reports name them.
ACTOR = "actor"
GROUP_MEMBER = "group_member"  # a member of the Group that is the actor
OBJECT = "object"
INSTRUCTOR = "instructor"
TEAM = "team"
CONTEXT_AGENT = "context_agent"
CONTEXT_GROUP = "context_group"
SUBSTATEMENT = "substatement"
AUTHORITY = "authority"
ROLES = (ACTOR, GROUP_MEMBER, OBJECT, INSTRUCTOR, TEAM, CONTEXT_AGENT, CONTEXT_GROUP, SUBSTATEMENT, AUTHORITY)


@dataclass(frozen=True)
class Person:
    """Everything a person is known by: the IFI keys of every identifier given. An ``mbox``
    brings its ``mbox_sha1sum`` along, since statements may carry either."""

    keys: frozenset[str]

    @classmethod
    def of(cls, agents: Iterable[dict[str, Any]]) -> Person:
        keys: set[str] = set()
        for agent in agents:
            key = ifi_key(agent)
            if key is None:
                continue
            keys.add(key)
            if "mbox" in agent:
                keys.add("mbox_sha1sum:" + hashlib.sha1(str(agent["mbox"]).encode()).hexdigest())
        return cls(frozenset(keys))

    def also_as(self, pseudonym: Pseudonym) -> Person:
        """The person in a store that keeps agents under pseudonyms: known by those too."""
        return Person(self.keys | {pseudonym.key(k) for k in self.keys})

    def is_(self, agent: Any) -> bool:
        return isinstance(agent, dict) and ifi_key(agent) in self.keys

    def in_group(self, group: Any) -> bool:
        return isinstance(group, dict) and any(self.is_(m) for m in group.get("member", ()))


def roles(statement: dict[str, Any], person: Person) -> set[str]:
    """The roles the person has in a statement (empty: it does not mention them)."""
    found: set[str] = set()
    _roles_in(statement, person, found, top=True)
    authority = statement.get("authority")
    if person.is_(authority) or person.in_group(authority):
        found.add(AUTHORITY)
    return found


def _roles_in(statement: dict[str, Any], person: Person, found: set[str], *, top: bool) -> None:
    actor = statement.get("actor")
    if person.is_(actor):
        found.add(ACTOR if top else SUBSTATEMENT)
    elif person.in_group(actor):
        found.add(GROUP_MEMBER if top else SUBSTATEMENT)
    obj = statement.get("object") or {}
    if obj.get("objectType") in ("Agent", "Group") and (person.is_(obj) or person.in_group(obj)):
        found.add(OBJECT if top else SUBSTATEMENT)
    elif obj.get("objectType") == "SubStatement":
        inner: set[str] = set()
        _roles_in(obj, person, inner, top=False)
        if inner:
            found.add(SUBSTATEMENT)
    context = statement.get("context") or {}
    for name, role in (("instructor", INSTRUCTOR), ("team", TEAM)):
        value = context.get(name)
        if person.is_(value) or person.in_group(value):
            found.add(role if top else SUBSTATEMENT)
    if any(person.is_(c.get("agent")) for c in context.get("contextAgents", ())):
        found.add(CONTEXT_AGENT if top else SUBSTATEMENT)
    if any(
        person.is_(c.get("group")) or person.in_group(c.get("group"))
        for c in context.get("contextGroups", ())
    ):
        found.add(CONTEXT_GROUP if top else SUBSTATEMENT)


def is_theirs(found: set[str]) -> bool:
    """Whether a statement with these roles is the person's own, to be erased as a whole."""
    return ACTOR in found or GROUP_MEMBER in found


def redact(statement: dict[str, Any], person: Person) -> dict[str, Any]:
    """A copy of a statement that only mentions the person, with the person taken out."""
    out = _redacted(statement, person)
    if "authority" in out:
        out["authority"] = _required(out["authority"], person)
    return out


def _redacted(statement: dict[str, Any], person: Person) -> dict[str, Any]:
    out = dict(statement)
    out["actor"] = _required(out["actor"], person)
    obj = out["object"]
    if obj.get("objectType") in ("Agent", "Group"):
        out["object"] = _required(obj, person)
    elif obj.get("objectType") == "SubStatement":
        out["object"] = _redacted(obj, person)
    if isinstance(out.get("context"), dict):
        context = dict(out["context"])
        for name in ("instructor", "team"):
            if name in context:
                kept = _optional(context[name], person)
                if kept is None:
                    del context[name]
                else:
                    context[name] = kept
        if "contextAgents" in context:
            agents = [c for c in context["contextAgents"] if not person.is_(c.get("agent"))]
            _set_or_drop(context, "contextAgents", agents)
        if "contextGroups" in context:
            groups = []
            for c in context["contextGroups"]:
                group = _optional(c["group"], person)
                if group is not None:
                    groups.append({**c, "group": group})
            _set_or_drop(context, "contextGroups", groups)
        out["context"] = context
    return out


def _set_or_drop(holder: dict[str, Any], name: str, items: list[Any]) -> None:
    # xAPI 2.0 asks for a non-empty array where these properties are given at all.
    if items:
        holder[name] = items
    else:
        del holder[name]


def _optional(agent: dict[str, Any], person: Person) -> dict[str, Any] | None:
    """An agent or Group where it may be left out: None when it is the person, or a Group
    that had only them as members."""
    return _without(agent, person)


def _required(agent: dict[str, Any], person: Person) -> dict[str, Any]:
    """An agent or Group where the statement needs one: the person becomes ``ERASED``."""
    if person.is_(agent):
        return dict(ERASED)
    kept = _without(agent, person)
    # An anonymous Group that had only them as members keeps one: the erased agent.
    return {**agent, "member": [dict(ERASED)]} if kept is None else kept


def _without(agent: dict[str, Any], person: Person) -> dict[str, Any] | None:
    """The agent or Group with the person taken out: None when nothing is left of it (it is
    the person, or an anonymous Group of only them)."""
    if person.is_(agent):
        return None
    if not person.in_group(agent):
        return agent
    members = [m for m in agent["member"] if not person.is_(m)]
    if members:
        return {**agent, "member": members}
    if ifi_key(agent) is not None:
        return {k: v for k, v in agent.items() if k != "member"}
    return None
