"""Invalid statements, each with the property its error must name."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from tests.factories import COMPLETED, VOIDED, activity, agent, statement

Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    def apply(s: dict[str, Any]) -> None:
        target = s
        parts = path.split(".")
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = value

    return apply


def _delete(path: str) -> Mutation:
    def apply(s: dict[str, Any]) -> None:
        target = s
        parts = path.split(".")
        for part in parts[:-1]:
            target = target[part]
        del target[parts[-1]]

    return apply


SUBSTATEMENT = {
    "objectType": "SubStatement",
    "actor": {"mbox": "mailto:sub@example.no"},
    "verb": {"id": COMPLETED},
    "object": {"id": "https://courses.example.no/sub"},
}

# (name, mutation, text the error message must contain)
INVALID: list[tuple[str, Mutation, str]] = [
    ("missing actor", _delete("actor"), "actor"),
    ("missing verb", _delete("verb"), "verb"),
    ("missing object", _delete("object"), "object"),
    ("null actor", _set("actor", None), "actor"),
    ("null result", _set("result", None), "result"),
    ("unknown top-level property", _set("foo", 1), "foo"),
    ("wrong key case", _set("Actor", agent()), "Actor"),
    ("id not a uuid", _set("id", "not-a-uuid"), "id"),
    ("id too many digits", _set("id", "AA97B177-9383-4934-8543-0F91A7A028368"), "id"),
    ("id numeric", _set("id", 12345), "id"),
    ("agent with two IFIs", _set("actor.openid", "http://openid.example.no/k"), "actor"),
    ("agent without IFI", _set("actor", {"name": "nobody"}), "actor"),
    ("mbox without mailto", _set("actor.mbox", "kari@example.no"), "actor.mbox"),
    ("mbox without address", _set("actor.mbox", "mailto:should.fail.com"), "actor.mbox"),
    ("bad sha1", _set("actor", {"mbox_sha1sum": "xyz"}), "mbox_sha1sum"),
    ("account without name", _set("actor", {"account": {"homePage": "http://e.no"}}), "name"),
    (
        "account homePage not IRI",
        _set("actor", {"account": {"homePage": "ab=c://x", "name": "a"}}),
        "homePage",
    ),
    ("agent objectType lower case", _set("actor.objectType", "agent"), "objectType"),
    ("anonymous group without members", _set("actor", {"objectType": "Group"}), "member"),
    (
        "group member is a group",
        _set("actor", {"objectType": "Group", "member": [{"objectType": "Group", "mbox": "mailto:g@e.no"}]}),
        "member",
    ),
    ("verb id not IRI", _set("verb.id", "completed"), "verb.id"),
    ("verb display not a map", _set("verb.display", "completed"), "verb.display"),
    ("verb display bad language", _set("verb.display", {"a12345678": "x"}), "verb.display"),
    ("activity id missing", _set("object", {"objectType": "Activity"}), "object.id"),
    ("activity id not IRI", _set("object.id", "ab=c://should.fail.com"), "object.id"),
    ("unknown object type", _set("object.objectType", "activity"), "objectType"),
    (
        "interaction type wrong case",
        _set("object.definition", {"interactionType": "choiCe"}),
        "interactionType",
    ),
    ("choices without interaction type", _set("object.definition", {"choices": [{"id": "a"}]}), "choices"),
    (
        "duplicate component ids",
        _set("object.definition", {"interactionType": "choice", "choices": [{"id": "a"}, {"id": "a"}]}),
        "choices[1].id",
    ),
    ("extension key not IRI", _set("result", {"extensions": {"not iri": 1}}), "extensions"),
    ("statementref bad id", _set("object", {"objectType": "StatementRef", "id": "x"}), "object.id"),
    (
        "substatement with id",
        _set("object", {**SUBSTATEMENT, "id": "9e13cefd-53d3-4eac-b5ed-2cf6693903bb"}),
        "object.id",
    ),
    ("nested substatement", _set("object", {**SUBSTATEMENT, "object": dict(SUBSTATEMENT)}), "SubStatement"),
    ("scaled above 1", _set("result", {"score": {"scaled": 1.01}}), "scaled"),
    ("raw above max", _set("result", {"score": {"raw": 11, "min": 0, "max": 10}}), "raw"),
    ("min above max", _set("result", {"score": {"min": 5, "max": 1}}), "min"),
    ("score string", _set("result", {"score": {"scaled": "0.5"}}), "scaled"),
    ("success as string", _set("result", {"success": "true"}), "success"),
    ("bad duration", _set("result", {"duration": "PA1H0M0S"}), "duration"),
    ("weeks mixed with days", _set("result", {"duration": "P4W1D"}), "duration"),
    ("registration not uuid", _set("context", {"registration": "abc"}), "registration"),
    ("team is an agent", _set("context", {"team": agent()}), "team"),
    ("revision with agent object", lambda s: s.update(object=agent(), context={"revision": "1"}), "revision"),
    ("platform not string", _set("context", {"platform": 5}), "platform"),
    ("context language invalid", _set("context", {"language": "a12345678"}), "language"),
    ("context activities not object", _set("context", {"contextActivities": "x"}), "contextActivities"),
    ("timestamp invalid", _set("timestamp", "01/011/2015"), "timestamp"),
    ("timestamp negative zero offset", _set("timestamp", "2008-09-15T15:53:00.601-00:00"), "timestamp"),
    ("version not accepted", _set("version", "1.1.0"), "version"),
    (
        "authority identified group",
        _set("authority", {"objectType": "Group", "mbox": "mailto:g@e.no", "member": [agent(), agent()]}),
        "authority",
    ),
    (
        "authority group of three",
        _set("authority", {"objectType": "Group", "member": [agent(), agent(), agent()]}),
        "authority.member",
    ),
    ("voiding without StatementRef", _set("verb", {"id": VOIDED}), "object"),
    (
        "attachment without sha2",
        _set(
            "attachments",
            [
                {
                    "usageType": "http://e.no/u",
                    "display": {"en": "a"},
                    "contentType": "text/plain",
                    "length": 1,
                }
            ],
        ),
        "sha2",
    ),
    (
        "context agents bad objectType (2.0)",
        _set("context", {"contextAgents": [{"objectType": "Agent", "agent": agent()}]}),
        "contextAgents[0].objectType",
    ),
    (
        "context agents empty relevantTypes (2.0)",
        _set(
            "context",
            {"contextAgents": [{"objectType": "contextAgent", "agent": agent(), "relevantTypes": []}]},
        ),
        "relevantTypes",
    ),
    (
        "context groups with agent (2.0)",
        _set("context", {"contextGroups": [{"objectType": "contextGroup", "group": agent()}]}),
        "contextGroups[0].group",
    ),
]


def invalid_statement(mutation: Mutation) -> dict[str, Any]:
    base = statement(actor=agent(), obj=activity(name={"en-US": "Fire safety"}))
    s = copy.deepcopy(base)
    mutation(s)
    return s
