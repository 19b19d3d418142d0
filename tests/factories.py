"""Builders for realistic statements; every call makes fresh identifiers unless told otherwise."""

from __future__ import annotations

import uuid
from typing import Any

COMPLETED = "http://adlnet.gov/expapi/verbs/completed"
ATTEMPTED = "http://adlnet.gov/expapi/verbs/attempted"
PASSED = "http://adlnet.gov/expapi/verbs/passed"
VOIDED = "http://adlnet.gov/expapi/verbs/voided"


def unique() -> str:
    return uuid.uuid4().hex[:10]


def agent(name: str | None = None) -> dict[str, Any]:
    name = name or f"learner-{unique()}"
    return {"objectType": "Agent", "name": name, "mbox": f"mailto:{name}@example.no"}


def account_agent(name: str | None = None) -> dict[str, Any]:
    return {"account": {"homePage": "https://kommune.example.no", "name": name or unique()}}


def activity(slug: str | None = None, **definition: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"objectType": "Activity", "id": f"https://courses.example.no/{slug or unique()}"}
    if definition:
        out["definition"] = definition
    return out


def statement(
    actor: dict[str, Any] | None = None,
    verb: str = COMPLETED,
    obj: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "actor": actor or agent(),
        "verb": {"id": verb, "display": {"en-US": verb.rsplit("/", 1)[-1]}},
        "object": obj or activity(),
    }
    out.update(extra)
    return out


def statement_with_id(**parts: Any) -> dict[str, Any]:
    """A statement with its id set, so that a test can find it again (in another LRS too)."""
    return statement(id=str(uuid.uuid4()), **parts)


def voiding(target_id: str, actor: dict[str, Any] | None = None) -> dict[str, Any]:
    return statement(actor=actor, verb=VOIDED, obj={"objectType": "StatementRef", "id": target_id})
