"""Pseudonymous statements: every agent replaced by a stable account, names dropped.

The account's name is an HMAC-SHA256 of the agent's identifier under a secret, so the same
person gets the same pseudonym in every statement (figures per learner still add up) and
nobody without the secret can tell who it is, or link it to the pseudonyms another secret
gives.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from lrs.xapi.agents import ifi_key


def pseudonymise(statement: dict[str, Any], secret: bytes, home_page: str) -> dict[str, Any]:
    """A copy of the statement with every Agent and Group pseudonymous: the actor, an agent
    object, the instructor, the team, 2.0 context agents and groups, and all of those inside
    a SubStatement. The authority is left out: it names who sent the statement here."""

    def account(agent: dict[str, Any]) -> dict[str, str]:
        key = ifi_key(agent) or ""
        return {"homePage": home_page, "name": hmac.new(secret, key.encode(), hashlib.sha256).hexdigest()}

    def agent(value: dict[str, Any]) -> dict[str, Any]:
        if value.get("objectType") == "Group":
            group: dict[str, Any] = {"objectType": "Group"}
            if ifi_key(value) is not None:
                group["account"] = account(value)
            if "member" in value:
                group["member"] = [agent(m) for m in value["member"]]
            return group
        return {"objectType": "Agent", "account": account(value)}

    def context(value: dict[str, Any]) -> dict[str, Any]:
        out = dict(value)
        for name in ("instructor", "team"):
            if name in out:
                out[name] = agent(out[name])
        if "contextAgents" in out:
            out["contextAgents"] = [{**c, "agent": agent(c["agent"])} for c in out["contextAgents"]]
        if "contextGroups" in out:
            out["contextGroups"] = [{**c, "group": agent(c["group"])} for c in out["contextGroups"]]
        return out

    def body(value: dict[str, Any]) -> dict[str, Any]:
        out = dict(value)
        out["actor"] = agent(out["actor"])
        obj = out["object"]
        if obj.get("objectType") in ("Agent", "Group"):
            out["object"] = agent(obj)
        elif obj.get("objectType") == "SubStatement":
            out["object"] = body(obj)
        if "context" in out:
            out["context"] = context(out["context"])
        return out

    out = body(statement)
    out.pop("authority", None)
    return out
