"""Activity definitions as the LRS keeps them, and the Person object of the Agents resource."""

from __future__ import annotations

from typing import Any

_LANGUAGE_MAPS = ("name", "description")


def merge_definitions(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The newer definition wins property by property; language maps merge entry by entry,
    so descriptions sent in different languages by different statements all survive."""
    merged = {**old, **new}
    for key in _LANGUAGE_MAPS:
        if key in old and key in new:
            merged[key] = {**old[key], **new[key]}
    return merged


def activity_object(activity_id: str, definition: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {"objectType": "Activity", "id": activity_id}
    if definition:
        out["definition"] = definition
    return out


def person(agent: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """The Person object for an agent: every identifier and name known for it, as lists."""
    out: dict[str, Any] = {"objectType": "Person"}
    if names:
        out["name"] = sorted(set(names))
    for key in ("mbox", "mbox_sha1sum", "openid", "account"):
        if key in agent:
            out[key] = [agent[key]]
    return out
