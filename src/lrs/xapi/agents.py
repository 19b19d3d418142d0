"""Agent identity: inverse functional identifiers (IFIs) in one canonical form."""

from __future__ import annotations

from typing import Any

import orjson

from lrs.xapi.errors import BadRequest
from lrs.xapi.versions import Version


def ifi_key(agent: dict[str, Any]) -> str | None:
    """The canonical identity of an Agent or identified Group, or None for an anonymous Group.

    Two agents are the same agent exactly when their keys are equal.
    """
    if "mbox" in agent:
        return f"mbox:{agent['mbox']}"
    if "mbox_sha1sum" in agent:
        return f"mbox_sha1sum:{str(agent['mbox_sha1sum']).lower()}"
    if "openid" in agent:
        return f"openid:{agent['openid']}"
    account = agent.get("account")
    if isinstance(account, dict):
        return f"account:{account.get('homePage')}|{account.get('name')}"
    return None


def identified(agent: dict[str, Any]) -> dict[str, Any]:
    """The agent reduced to its objectType and IFI (the ``ids`` format)."""
    out: dict[str, Any] = {}
    if "objectType" in agent:
        out["objectType"] = agent["objectType"]
    for key in ("mbox", "mbox_sha1sum", "openid", "account"):
        if key in agent:
            out[key] = agent[key]
            break
    else:
        if "member" in agent:
            out["member"] = [identified(member) for member in agent["member"]]
    return out


def parse_agent_param(raw: str, name: str, version: Version) -> dict[str, Any]:
    """An Agent (or Group) given as a JSON query parameter, validated."""
    from lrs.xapi.validate import validator_for

    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"{name}: is not valid JSON ({exc})") from None
    validator_for(version).actor(value, name)
    return value  # type: ignore[no-any-return]
