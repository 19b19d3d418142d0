"""Pseudonymous statements: every agent replaced by a stable account, names dropped.

The account's name is an HMAC-SHA256 of the agent's identifier under a secret, so the same
person gets the same pseudonym in every statement (figures per learner still add up) and
nobody without the secret can tell who it is, or link it to the pseudonyms another secret
gives. An agent that already is such an account (its homePage is the pseudonyms') is left
as it is, so pseudonymising twice changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from lrs.xapi.agents import ifi_key


@dataclass(frozen=True)
class Pseudonym:
    """How one secret turns agents into pseudonymous accounts under ``home_page``."""

    secret: bytes
    home_page: str

    def is_pseudonym(self, agent: dict[str, Any]) -> bool:
        account = agent.get("account")
        return isinstance(account, dict) and account.get("homePage") == self.home_page

    def account(self, key: str) -> dict[str, str]:
        """The account standing for an agent with this IFI key."""
        name = hmac.new(self.secret, key.encode(), hashlib.sha256).hexdigest()
        return {"homePage": self.home_page, "name": name}

    def key(self, key: str) -> str:
        """The IFI key of the pseudonym of an agent with this IFI key (a pseudonym's own key
        stays as it is)."""
        if key.startswith(f"account:{self.home_page}|"):
            return key
        account = self.account(key)
        return f"account:{account['homePage']}|{account['name']}"

    def agent(self, value: dict[str, Any]) -> dict[str, Any]:
        """An Agent or Group with its identifier (and its members') made pseudonymous."""
        if value.get("objectType") == "Group":
            group: dict[str, Any] = {"objectType": "Group"}
            key = ifi_key(value)
            if key is not None:
                group["account"] = value["account"] if self.is_pseudonym(value) else self.account(key)
            if "member" in value:
                group["member"] = [self.agent(m) for m in value["member"]]
            return group
        if self.is_pseudonym(value):
            return {"objectType": "Agent", "account": value["account"]}
        return {"objectType": "Agent", "account": self.account(ifi_key(value) or "")}

    def statement(self, statement: dict[str, Any]) -> dict[str, Any]:
        """A copy of the statement with every Agent and Group pseudonymous: the actor, an
        agent object, the instructor, the team, 2.0 context agents and groups, and all of
        those inside a SubStatement. The authority is left out: it names who sent the
        statement, and the LRS that stores the copy sets its own."""
        out = self._body(statement)
        out.pop("authority", None)
        return out

    def _body(self, value: dict[str, Any]) -> dict[str, Any]:
        out = dict(value)
        out["actor"] = self.agent(out["actor"])
        obj = out["object"]
        if obj.get("objectType") in ("Agent", "Group"):
            out["object"] = self.agent(obj)
        elif obj.get("objectType") == "SubStatement":
            out["object"] = self._body(obj)
        if "context" in out:
            out["context"] = self._context(out["context"])
        return out

    def _context(self, value: dict[str, Any]) -> dict[str, Any]:
        out = dict(value)
        for name in ("instructor", "team"):
            if name in out:
                out[name] = self.agent(out[name])
        if "contextAgents" in out:
            out["contextAgents"] = [{**c, "agent": self.agent(c["agent"])} for c in out["contextAgents"]]
        if "contextGroups" in out:
            out["contextGroups"] = [{**c, "group": self.agent(c["group"])} for c in out["contextGroups"]]
        return out
