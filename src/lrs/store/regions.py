"""Regions: named groups of stores that share aggregate figures, and their members."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


@dataclass(frozen=True)
class Region:
    id: int
    name: str
    min_group_size: int
    created: datetime


@dataclass(frozen=True)
class Member:
    """A member store, with its settings (whether it still shares, how it is named)."""

    store_id: int
    store: str
    settings: dict[str, Any]
    joined: datetime


def _region(r: Any) -> Region:
    return Region(r.id, r.name, r.min_group_size, r.created)


async def create(conn: AsyncConnection, name: str, min_group_size: int) -> Region:
    row = (
        await conn.execute(
            text(
                "INSERT INTO regions (name, min_group_size) VALUES (:name, :min)"
                " RETURNING id, name, min_group_size, created"
            ),
            {"name": name, "min": min_group_size},
        )
    ).one()
    return _region(row)


async def named(conn: AsyncConnection, name: str) -> Region | None:
    row = (
        await conn.execute(
            text("SELECT id, name, min_group_size, created FROM regions WHERE name = :name"), {"name": name}
        )
    ).one_or_none()
    return None if row is None else _region(row)


async def by_id(conn: AsyncConnection, region_id: int) -> Region | None:
    row = (
        await conn.execute(
            text("SELECT id, name, min_group_size, created FROM regions WHERE id = :id"), {"id": region_id}
        )
    ).one_or_none()
    return None if row is None else _region(row)


async def list_all(conn: AsyncConnection) -> list[Region]:
    rows = await conn.execute(text("SELECT id, name, min_group_size, created FROM regions ORDER BY name"))
    return [_region(r) for r in rows]


async def set_min_group_size(conn: AsyncConnection, region_id: int, min_group_size: int) -> None:
    await conn.execute(
        text("UPDATE regions SET min_group_size = :min WHERE id = :id"),
        {"id": region_id, "min": min_group_size},
    )


async def delete(conn: AsyncConnection, region_id: int) -> None:
    await conn.execute(text("DELETE FROM regions WHERE id = :id"), {"id": region_id})


async def members(conn: AsyncConnection, region_id: int) -> list[Member]:
    """The member stores, in the order they joined."""
    rows = await conn.execute(
        text("""
        SELECT m.store_id, s.name AS store, s.settings, m.joined
          FROM region_members m JOIN stores s ON s.id = m.store_id
         WHERE m.region_id = :region ORDER BY m.joined, m.store_id
        """),
        {"region": region_id},
    )
    return [Member(r.store_id, r.store, r.settings, r.joined) for r in rows]


async def join(conn: AsyncConnection, region_id: int, store_id: int) -> bool:
    """Make the store a member; False when it already was."""
    result = await conn.execute(
        text(
            "INSERT INTO region_members (region_id, store_id) VALUES (:region, :store) ON CONFLICT DO NOTHING"
        ),
        {"region": region_id, "store": store_id},
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def leave(conn: AsyncConnection, region_id: int, store_id: int) -> bool:
    result = await conn.execute(
        text("DELETE FROM region_members WHERE region_id = :region AND store_id = :store"),
        {"region": region_id, "store": store_id},
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
