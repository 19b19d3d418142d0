"""Stores: one isolated LRS each (a municipality, a project)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


@dataclass(frozen=True)
class Store:
    id: int
    name: str
    created: datetime


async def create(conn: AsyncConnection, name: str) -> Store:
    row = (
        await conn.execute(
            text("INSERT INTO stores (name) VALUES (:name) RETURNING id, name, created"),
            {"name": name},
        )
    ).one()
    return Store(row.id, row.name, row.created)


async def get_by_name(conn: AsyncConnection, name: str) -> Store | None:
    row = (
        await conn.execute(text("SELECT id, name, created FROM stores WHERE name = :name"), {"name": name})
    ).one_or_none()
    return None if row is None else Store(row.id, row.name, row.created)


async def list_all(conn: AsyncConnection) -> list[Store]:
    rows = (await conn.execute(text("SELECT id, name, created FROM stores ORDER BY id"))).all()
    return [Store(r.id, r.name, r.created) for r in rows]
