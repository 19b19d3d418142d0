"""The ``format`` of statements served: exact, ids, canonical."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lrs.xapi.agents import identified
from lrs.xapi.langtags import best_language
from lrs.xapi.query import Format

_LANGUAGE_MAPS = ("name", "description")
_COMPONENT_LISTS = ("choices", "scale", "source", "target", "steps")


Definitions = Mapping[str, dict[str, Any]]


def render(
    statement: dict[str, Any],
    fmt: Format,
    languages: list[str],
    definitions: Definitions | None = None,
) -> dict[str, Any]:
    """The statement as the format asks; ``exact`` returns it untouched.

    ``canonical`` uses the LRS's canonical activity definitions where it has them.
    """
    if fmt is Format.IDS:
        return _ids(statement)
    if fmt is Format.CANONICAL:
        return _canonical(statement, languages, definitions or {})
    return statement


def activity_ids(statement: dict[str, Any]) -> set[str]:
    """Every activity id a statement mentions (object, context, substatement)."""
    found: set[str] = set()
    obj = statement["object"]
    kind = obj.get("objectType", "Activity")
    if kind == "Activity":
        found.add(obj["id"])
    elif kind == "SubStatement":
        found |= activity_ids(obj)
    for values in (statement.get("context") or {}).get("contextActivities", {}).values():
        found.update(a["id"] for a in values)
    return found


def _ids(statement: dict[str, Any]) -> dict[str, Any]:
    out = dict(statement)
    out["actor"] = identified(statement["actor"])
    out["verb"] = {"id": statement["verb"]["id"]}
    out["object"] = _ids_object(statement["object"])
    if "authority" in statement:
        out["authority"] = identified(statement["authority"])
    if "context" in statement:
        out["context"] = _ids_context(statement["context"])
    return out


def _ids_object(obj: dict[str, Any]) -> dict[str, Any]:
    kind = obj.get("objectType", "Activity")
    if kind == "Activity":
        return {"id": obj["id"]}
    if kind in ("Agent", "Group"):
        return identified(obj)
    if kind == "SubStatement":
        return _ids(obj)
    return obj


def _ids_context(context: dict[str, Any]) -> dict[str, Any]:
    out = dict(context)
    for prop in ("instructor", "team"):
        if prop in context:
            out[prop] = identified(context[prop])
    if "contextActivities" in context:
        out["contextActivities"] = {
            key: [{"id": a["id"]} for a in values] for key, values in context["contextActivities"].items()
        }
    if "contextAgents" in context:
        out["contextAgents"] = [
            {**item, "agent": identified(item["agent"])} for item in context["contextAgents"]
        ]
    if "contextGroups" in context:
        out["contextGroups"] = [
            {**item, "group": identified(item["group"])} for item in context["contextGroups"]
        ]
    return out


def _canonical(statement: dict[str, Any], languages: list[str], definitions: Definitions) -> dict[str, Any]:
    out = dict(statement)
    verb = statement["verb"]
    if "display" in verb:
        out["verb"] = {**verb, "display": _one_language(verb["display"], languages)}
    obj = statement["object"]
    kind = obj.get("objectType", "Activity")
    if kind == "Activity":
        out["object"] = _canonical_activity(obj, languages, definitions)
    elif kind == "SubStatement":
        out["object"] = _canonical(obj, languages, definitions)
    context = statement.get("context")
    if context and "contextActivities" in context:
        out["context"] = {
            **context,
            "contextActivities": {
                key: [_canonical_activity(a, languages, definitions) for a in values]
                for key, values in context["contextActivities"].items()
            },
        }
    return out


def _canonical_activity(
    activity: dict[str, Any], languages: list[str], definitions: Definitions
) -> dict[str, Any]:
    definition = definitions.get(activity["id"]) or activity.get("definition")
    if not definition:
        return activity
    new_def = dict(definition)
    for key in _LANGUAGE_MAPS:
        if key in definition:
            new_def[key] = _one_language(definition[key], languages)
    for key in _COMPONENT_LISTS:
        if key in definition:
            new_def[key] = [
                {**c, "description": _one_language(c["description"], languages)} if "description" in c else c
                for c in definition[key]
            ]
    return {**activity, "definition": new_def}


def _one_language(language_map: dict[str, str], languages: list[str]) -> dict[str, str]:
    key = best_language(list(language_map), languages)
    return {} if key is None else {key: language_map[key]}
