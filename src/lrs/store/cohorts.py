"""Cohorts (target groups), their membership over time, and what they are assigned.

A cohort may sit inside a parent cohort. Membership is kept as history: each row says from
when until when (open: still) a learner belonged, so a past window is counted with the
membership of its time. Learners are keyed as in the analytics rollups.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from lrs.store.keys import analytics_key


@dataclass(frozen=True)
class Cohort:
    id: int
    name: str
    parent: str | None
    created: datetime
    changed: datetime | None
    members: int
    assignments: int


@dataclass(frozen=True)
class Member:
    learner: str  # the IFI key, as analytics name learners
    name: str | None


@dataclass(frozen=True)
class Membership:
    learner: str
    name: str | None
    valid_from: datetime
    valid_to: datetime | None


@dataclass(frozen=True)
class Assignment:
    cohort: str
    activity: str
    due: datetime | None


_COHORTS = """
SELECT c.id, c.name, p.name AS parent, c.created, c.changed,
       (SELECT count(*) FROM cohort_members m
         WHERE m.store_id = c.store_id AND m.cohort_id = c.id AND m.valid_to IS NULL) AS members,
       (SELECT count(*) FROM cohort_assignments a
         WHERE a.store_id = c.store_id AND a.cohort_id = c.id) AS assignments
  FROM cohorts c
  LEFT JOIN cohorts p ON p.store_id = c.store_id AND p.id = c.parent_id
 WHERE c.store_id = :store"""


def _cohort(row: Any) -> Cohort:
    return Cohort(row.id, row.name, row.parent, row.created, row.changed, row.members, row.assignments)


async def get(conn: AsyncConnection, store_id: int, name: str) -> Cohort | None:
    row = (
        await conn.execute(text(_COHORTS + " AND c.name = :name"), {"store": store_id, "name": name})
    ).first()
    return None if row is None else _cohort(row)


async def list_all(conn: AsyncConnection, store_id: int) -> list[Cohort]:
    rows = await conn.execute(text(_COHORTS + " ORDER BY c.name"), {"store": store_id})
    return [_cohort(r) for r in rows]


async def create(conn: AsyncConnection, store_id: int, name: str, parent_id: int | None) -> None:
    await conn.execute(
        text("INSERT INTO cohorts (store_id, name, parent_id) VALUES (:store, :name, :parent)"),
        {"store": store_id, "name": name, "parent": parent_id},
    )


async def set_parent(conn: AsyncConnection, store_id: int, cohort_id: int, parent_id: int | None) -> None:
    await conn.execute(
        text("UPDATE cohorts SET parent_id = :parent WHERE store_id = :store AND id = :id"),
        {"store": store_id, "id": cohort_id, "parent": parent_id},
    )


async def lineage(conn: AsyncConnection, store_id: int, cohort_id: int) -> list[int]:
    """The cohort's id and those of its ancestors, nearest first."""
    rows = await conn.execute(
        text("""
        WITH RECURSIVE up (id, parent_id, depth) AS (
            SELECT id, parent_id, 0 FROM cohorts WHERE store_id = :store AND id = :id
            UNION ALL
            SELECT c.id, c.parent_id, up.depth + 1
              FROM cohorts c JOIN up ON c.store_id = :store AND c.id = up.parent_id
        )
        SELECT id FROM up ORDER BY depth
        """),
        {"store": store_id, "id": cohort_id},
    )
    return [r.id for r in rows]


async def has_children(conn: AsyncConnection, store_id: int, cohort_id: int) -> bool:
    found = await conn.execute(
        text("SELECT EXISTS (SELECT FROM cohorts WHERE store_id = :store AND parent_id = :id)"),
        {"store": store_id, "id": cohort_id},
    )
    return bool(found.scalar_one())


async def delete(conn: AsyncConnection, store_id: int, cohort_id: int) -> None:
    """Delete a cohort with its membership history and assignments."""
    await conn.execute(
        text("DELETE FROM cohorts WHERE store_id = :store AND id = :id"), {"store": store_id, "id": cohort_id}
    )


async def replace_members(
    conn: AsyncConnection, store_id: int, cohort_id: int, members: list[Member], at: datetime
) -> tuple[int, int]:
    """Make ``members`` the cohort's membership from ``at``: memberships of learners not
    among them end, learners not yet members join. Returns (joined, left). Rows are written
    only for learners who join or leave; those who stay are left as they are."""
    params = {
        "store": store_id,
        "cohort": cohort_id,
        "at": at,
        "keys": [analytics_key(m.learner) for m in members],
        "learners": [m.learner for m in members],
        "names": [m.name for m in members],
    }
    left = await conn.execute(
        text("""
        UPDATE cohort_members m SET valid_to = :at
         WHERE m.store_id = :store AND m.cohort_id = :cohort AND m.valid_to IS NULL
           AND NOT EXISTS (SELECT FROM unnest(CAST(:keys AS uuid[])) AS k(key) WHERE k.key = m.learner_key)
        """),
        params,
    )
    joined = await conn.execute(
        text("""
        INSERT INTO cohort_members (store_id, cohort_id, learner_key, learner, name, valid_from)
        SELECT :store, :cohort, u.key, u.learner, u.name, :at
          FROM unnest(CAST(:keys AS uuid[]), CAST(:learners AS text[]), CAST(:names AS text[]))
               AS u(key, learner, name)
         WHERE NOT EXISTS (SELECT FROM cohort_members m
                            WHERE m.store_id = :store AND m.cohort_id = :cohort
                              AND m.learner_key = u.key AND m.valid_to IS NULL)
        -- left and joined again at the same moment: the membership simply goes on
            ON CONFLICT (store_id, cohort_id, learner_key, valid_from) DO UPDATE SET valid_to = NULL
        """),
        params,
    )
    await conn.execute(
        text("UPDATE cohorts SET changed = :at WHERE store_id = :store AND id = :cohort"), params
    )
    return joined.rowcount, left.rowcount


async def members(
    conn: AsyncConnection, store_id: int, cohort_id: int, at: datetime | None
) -> list[Membership]:
    """The cohort's own members at ``at`` (None: its whole history), by learner."""
    when = "" if at is None else " AND valid_from <= :at AND (valid_to IS NULL OR valid_to > :at)"
    rows = await conn.execute(
        text(
            "SELECT learner, name, valid_from, valid_to FROM cohort_members"
            f" WHERE store_id = :store AND cohort_id = :cohort{when} ORDER BY learner, valid_from"
        ),
        {"store": store_id, "cohort": cohort_id, "at": at},
    )
    return [Membership(r.learner, r.name, r.valid_from, r.valid_to) for r in rows]


async def set_assignment(
    conn: AsyncConnection, store_id: int, cohort_id: int, activity: str, due: datetime | None
) -> None:
    await conn.execute(
        text("""
        INSERT INTO cohort_assignments (store_id, cohort_id, activity_key, activity_id, due)
        VALUES (:store, :cohort, :key, :activity, :due)
            ON CONFLICT (store_id, cohort_id, activity_key) DO UPDATE SET due = EXCLUDED.due
        """),
        {
            "store": store_id,
            "cohort": cohort_id,
            "key": analytics_key(activity),
            "activity": activity,
            "due": due,
        },
    )


async def delete_assignment(conn: AsyncConnection, store_id: int, cohort_id: int, activity: str) -> bool:
    result = await conn.execute(
        text(
            "DELETE FROM cohort_assignments WHERE store_id = :store AND cohort_id = :cohort"
            " AND activity_key = :key"
        ),
        {"store": store_id, "cohort": cohort_id, "key": analytics_key(activity)},
    )
    return result.rowcount > 0


async def assignments(
    conn: AsyncConnection, store_id: int, cohort_id: int | None = None, activity: str | None = None
) -> list[Assignment]:
    """Assignments of one cohort, or of one activity, or all of the store's."""
    clauses = ""
    if cohort_id is not None:
        clauses += " AND a.cohort_id = :cohort"
    if activity is not None:
        clauses += " AND a.activity_key = :key"
    rows = await conn.execute(
        text(
            "SELECT c.name, a.activity_id, a.due FROM cohort_assignments a"
            " JOIN cohorts c ON c.store_id = a.store_id AND c.id = a.cohort_id"
            f" WHERE a.store_id = :store{clauses} ORDER BY c.name, a.activity_id"
        ),
        {
            "store": store_id,
            "cohort": cohort_id,
            "key": None if activity is None else analytics_key(activity),
        },
    )
    return [Assignment(r.name, r.activity_id, r.due) for r in rows]


@dataclass(frozen=True)
class LearnerMembership:
    cohort: str
    name: str | None
    valid_from: datetime
    valid_to: datetime | None


async def memberships_of(
    conn: AsyncConnection, store_id: int, learners: list[str]
) -> list[LearnerMembership]:
    """Every cohort membership, past and present, of any of these learners (IFI keys)."""
    rows = await conn.execute(
        text("""
        SELECT c.name AS cohort, m.name, m.valid_from, m.valid_to
          FROM cohort_members m JOIN cohorts c ON c.store_id = m.store_id AND c.id = m.cohort_id
         WHERE m.store_id = :store AND m.learner_key = ANY(CAST(:keys AS uuid[]))
         ORDER BY c.name, m.valid_from
        """),
        {"store": store_id, "keys": [analytics_key(k) for k in learners]},
    )
    return [LearnerMembership(r.cohort, r.name, r.valid_from, r.valid_to) for r in rows]


async def forget_learners(conn: AsyncConnection, store_id: int, learners: list[str]) -> int:
    """Delete every membership of these learners, past and present."""
    result = await conn.execute(
        text(
            "DELETE FROM cohort_members WHERE store_id = :store AND learner_key = ANY(CAST(:keys AS uuid[]))"
        ),
        {"store": store_id, "keys": [analytics_key(k) for k in learners]},
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
