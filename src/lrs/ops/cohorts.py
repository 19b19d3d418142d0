"""Cohorts (target groups), their members and assignments: the use cases behind
``/analytics/cohorts`` and ``lrs cohorts``.

Every change is one transaction with its audit entry. Membership is replaced as a whole
(an HR system syncs it nightly) and costs writes only for the learners who join or leave.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from lrs.ops.audit import record as _record
from lrs.ops.caller import Caller
from lrs.scopes import COHORTS
from lrs.store import cohorts as cohort_store
from lrs.store.cohorts import Assignment as Assignment
from lrs.store.cohorts import Cohort as Cohort
from lrs.store.cohorts import Member
from lrs.store.cohorts import Membership as Membership
from lrs.store.database import Database, now
from lrs.xapi.agents import ifi_key
from lrs.xapi.errors import BadRequest, Conflict, NotFound
from lrs.xapi.pseudonyms import Pseudonym
from lrs.xapi.validate import check_iri, validator_for
from lrs.xapi.versions import Version

# Cohort names go in URL paths: no '/', no control characters.
_NAME = re.compile(r"[^\x00-\x1f\x7f/]{1,200}")
MAX_MEMBERS = 200_000
# CSV columns that make up an agent's identifier (exactly one IFI per row).
CSV_COLUMNS = ("mbox", "mbox_sha1sum", "openid", "account_homepage", "account_name", "name")


def check_name(name: str, field: str = "name") -> str:
    if not _NAME.fullmatch(name) or not name.strip():
        raise BadRequest(
            f"{field}: {name!r} is not a cohort name; use 1 to 200 characters, "
            "without '/' or control characters"
        )
    return name


async def _named(conn: AsyncConnection, store_id: int, name: str) -> Cohort:
    found = await cohort_store.get(conn, store_id, name)
    if found is None:
        raise NotFound(f"no cohort named {name!r} in this store")
    return found


async def list_all(db: Database, who: Caller) -> list[Cohort]:
    who.require(COHORTS)
    return await db.read(lambda conn: cohort_store.list_all(conn, who.store_id))


async def get(db: Database, who: Caller, name: str) -> Cohort:
    who.require(COHORTS)
    return await db.read(lambda conn: _named(conn, who.store_id, name))


async def put(db: Database, who: Caller, name: str, parent: str | None) -> tuple[Cohort, bool]:
    """Create the cohort, or move it under another parent (None: top level). Returns it and
    whether it was created. A cohort cannot sit inside itself or its own descendants."""
    who.require(COHORTS)
    check_name(name)
    if parent is not None:
        check_name(parent, "parent")

    async def work(conn: AsyncConnection) -> tuple[Cohort, bool]:
        parent_id = None
        if parent is not None:
            above = await cohort_store.get(conn, who.store_id, parent)
            if above is None:
                raise BadRequest(f"parent: no cohort named {parent!r} in this store")
            parent_id = above.id
        existing = await cohort_store.get(conn, who.store_id, name)
        if existing is None:
            await cohort_store.create(conn, who.store_id, name, parent_id)
            await _record(conn, who, "cohort.create", name, {"parent": parent})
            return await _named(conn, who.store_id, name), True
        if existing.parent != parent:
            if parent_id is not None and existing.id in await cohort_store.lineage(
                conn, who.store_id, parent_id
            ):
                raise Conflict(f"parent: {parent!r} is {name!r} or inside it; cohorts cannot form a loop")
            await cohort_store.set_parent(conn, who.store_id, existing.id, parent_id)
            await _record(conn, who, "cohort.move", name, {"from": existing.parent, "parent": parent})
        return await _named(conn, who.store_id, name), False

    return await db.write(work)


async def delete(db: Database, who: Caller, name: str) -> None:
    """Delete a cohort, its membership history and its assignments; one with cohorts inside
    it is refused (move or delete those first)."""
    who.require(COHORTS)

    async def work(conn: AsyncConnection) -> None:
        cohort = await _named(conn, who.store_id, name)
        if await cohort_store.has_children(conn, who.store_id, cohort.id):
            raise Conflict(f"cohort {name!r} has cohorts inside it; move or delete them first")
        await cohort_store.delete(conn, who.store_id, cohort.id)
        await _record(conn, who, "cohort.delete", name, {})

    await db.write(work)


@dataclass(frozen=True)
class MembershipChange:
    cohort: str
    members: int
    joined: int
    left: int
    at: datetime


# An agent as sent, with where it was found (for error messages).
Sent = tuple[str, Any]


def parse_members(body: bytes, media_type: str) -> list[Sent]:
    """Agents from a JSON array of Agent objects, or from CSV with a header row naming
    columns among ``CSV_COLUMNS`` (one identifier per row; ``name`` is optional)."""
    if media_type == "text/csv":
        return _csv_agents(body)
    if media_type != "application/json":
        raise BadRequest(
            f"Content-Type: members are sent as application/json or text/csv, got {media_type!r}"
        )
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"members: the body is not valid JSON ({exc})") from None
    if not isinstance(value, list):
        raise BadRequest("members: send a JSON array of Agent objects")
    return [(f"members[{index}]", agent) for index, agent in enumerate(value)]


def _csv_agents(body: bytes) -> list[Sent]:
    try:
        rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"))))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise BadRequest(f"members: the CSV cannot be read ({exc})") from None
    if rows:
        unknown = sorted(set(rows[0]) - set(CSV_COLUMNS) - {None})  # type: ignore[arg-type]
        if unknown:
            raise BadRequest(
                f"members: unknown CSV column {', '.join(map(repr, unknown))}; use {', '.join(CSV_COLUMNS)}"
            )
    agents: list[Sent] = []
    for number, row in enumerate(rows, start=2):
        cells = {k: v.strip() for k, v in row.items() if k is not None and isinstance(v, str) and v.strip()}
        agent: dict[str, Any] = {"objectType": "Agent"}
        for field in ("mbox", "mbox_sha1sum", "openid", "name"):
            if field in cells:
                agent[field] = cells[field]
        if "account_homepage" in cells or "account_name" in cells:
            agent["account"] = {"homePage": cells.get("account_homepage"), "name": cells.get("account_name")}
            agent["account"] = {k: v for k, v in agent["account"].items() if v is not None}
        agents.append((f"members: CSV line {number}", agent))
    return agents


def _members(agents: list[Sent], pseudonym: Pseudonym | None) -> list[Member]:
    """The members as analytics know them: in a pseudonymising store, by their pseudonym
    and without a name, like the learners in its statements."""
    if len(agents) > MAX_MEMBERS:
        raise BadRequest(f"members: at most {MAX_MEMBERS} per cohort, got {len(agents)}")
    check = validator_for(Version.V2)
    found: dict[str, Member] = {}
    for where, agent in agents:
        check.agent(agent, where)
        key = ifi_key(agent)
        assert key is not None  # a valid Agent has exactly one identifier
        if pseudonym is not None:
            key = pseudonym.key(key)
            found[key] = Member(key, None)
        else:
            found[key] = Member(key, agent.get("name"))
    return list(found.values())


async def replace_members(
    db: Database, who: Caller, name: str, agents: list[Sent], at: datetime | None = None
) -> MembershipChange:
    """Make these agents the cohort's members from ``at`` (default: now). ``at`` may lie in
    the past, for a change an HR system reports late, but not before the cohort's last
    change, nor in the future: history is only ever added to."""
    who.require(COHORTS)
    members = _members(agents, who.pseudonym)

    async def work(conn: AsyncConnection) -> MembershipChange:
        cohort = await _named(conn, who.store_id, name)
        current = await now(conn)
        when = current if at is None else at
        if when > current:
            raise BadRequest("from: a membership change cannot be dated in the future")
        if cohort.changed is not None and when < cohort.changed:
            raise Conflict(
                f"from: cohort {name!r} last changed at {cohort.changed.isoformat()}; "
                "a change cannot be dated before it"
            )
        joined, left = await cohort_store.replace_members(conn, who.store_id, cohort.id, members, when)
        await _record(
            conn, who, "cohort.members", name, {"members": len(members), "joined": joined, "left": left}
        )
        return MembershipChange(name, len(members), joined, left, when)

    return await db.write(work)


async def members(
    db: Database, who: Caller, name: str, at: datetime | None, history: bool
) -> list[Membership]:
    """The cohort's own members at ``at`` (default now), or its whole history."""
    who.require(COHORTS)

    async def work(conn: AsyncConnection) -> list[Membership]:
        cohort = await _named(conn, who.store_id, name)
        when = None if history else at or await now(conn)
        return await cohort_store.members(conn, who.store_id, cohort.id, when)

    return await db.read(work)


async def assign(db: Database, who: Caller, name: str, activity: str, due: datetime | None) -> Assignment:
    """The cohort must complete the activity (by ``due``, if given); assigning it again
    changes the due date."""
    who.require(COHORTS)
    check_iri(activity, "activity")

    async def work(conn: AsyncConnection) -> Assignment:
        cohort = await _named(conn, who.store_id, name)
        await cohort_store.set_assignment(conn, who.store_id, cohort.id, activity, due)
        await _record(
            conn, who, "cohort.assign", name, {"activity": activity, "due": due.isoformat() if due else None}
        )
        return Assignment(name, activity, due)

    return await db.write(work)


async def unassign(db: Database, who: Caller, name: str, activity: str) -> None:
    who.require(COHORTS)
    check_iri(activity, "activity")

    async def work(conn: AsyncConnection) -> None:
        cohort = await _named(conn, who.store_id, name)
        if not await cohort_store.delete_assignment(conn, who.store_id, cohort.id, activity):
            raise NotFound(f"cohort {name!r} is not assigned {activity!r}")
        await _record(conn, who, "cohort.unassign", name, {"activity": activity})

    await db.write(work)


async def assignments(db: Database, who: Caller, name: str | None, activity: str | None) -> list[Assignment]:
    """Assignments of one cohort, of one activity, or all of the store's."""
    who.require(COHORTS)
    if activity is not None:
        check_iri(activity, "activity")

    async def work(conn: AsyncConnection) -> list[Assignment]:
        cohort_id = None if name is None else (await _named(conn, who.store_id, name)).id
        return await cohort_store.assignments(conn, who.store_id, cohort_id, activity)

    return await db.read(work)
