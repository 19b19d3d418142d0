"""Stores: one isolated LRS each (a municipality, a project), with their own settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from lrs.jsontext import dumps
from lrs.store.schema import DEFAULT_STORE_ID


@dataclass(frozen=True)
class Store:
    id: int
    name: str
    created: datetime
    settings: dict[str, Any]
    pseudonym_secret: bytes = field(default=b"", repr=False)


_COLUMNS = "id, name, created, settings, pseudonym_secret"


def _store(row: Any) -> Store:
    return Store(row.id, row.name, row.created, row.settings, bytes(row.pseudonym_secret))


async def create(conn: AsyncConnection, name: str) -> Store:
    row = (
        await conn.execute(
            text(f"INSERT INTO stores (name) VALUES (:name) RETURNING {_COLUMNS}"), {"name": name}
        )
    ).one()
    return _store(row)


async def get(conn: AsyncConnection, store_id: int) -> Store | None:
    row = (
        await conn.execute(text(f"SELECT {_COLUMNS} FROM stores WHERE id = :id"), {"id": store_id})
    ).one_or_none()
    return None if row is None else _store(row)


async def get_by_name(conn: AsyncConnection, name: str) -> Store | None:
    row = (
        await conn.execute(text(f"SELECT {_COLUMNS} FROM stores WHERE name = :name"), {"name": name})
    ).one_or_none()
    return None if row is None else _store(row)


async def list_all(conn: AsyncConnection) -> list[Store]:
    rows = (await conn.execute(text(f"SELECT {_COLUMNS} FROM stores ORDER BY id"))).all()
    return [_store(r) for r in rows]


async def name_taken(conn: AsyncConnection, name: str) -> bool:
    found = (
        await conn.execute(text("SELECT 1 FROM stores WHERE name = :name"), {"name": name})
    ).scalar_one_or_none()
    return found is not None


async def rename(conn: AsyncConnection, store_id: int, name: str) -> Store:
    row = (
        await conn.execute(
            text(f"UPDATE stores SET name = :name WHERE id = :id RETURNING {_COLUMNS}"),
            {"id": store_id, "name": name},
        )
    ).one()
    return _store(row)


async def update_settings(conn: AsyncConnection, store_id: int, settings: dict[str, Any]) -> Store:
    row = (
        await conn.execute(
            text(
                f"UPDATE stores SET settings = CAST(:settings AS jsonb) WHERE id = :id RETURNING {_COLUMNS}"
            ),
            {"id": store_id, "settings": dumps(settings)},
        )
    ).one()
    return _store(row)


async def delete(conn: AsyncConnection, store_id: int) -> None:
    """Delete a store and everything in it. The default store cannot be deleted."""
    assert store_id != DEFAULT_STORE_ID
    # Statements and their index carry no foreign key (they are the hottest insert path), so
    # they are deleted here. The store's row is locked first: a write into the store holds a
    # share of that lock from its first query (store.statements.insert), so this waits for
    # the writes under way and sees their rows, and a write beginning later waits for this
    # and then finds no store.
    await conn.execute(text("SELECT 1 FROM stores WHERE id = :id FOR UPDATE"), {"id": store_id})
    for table in ("statement_index", "statements"):
        await conn.execute(text(f"DELETE FROM {table} WHERE store_id = :id"), {"id": store_id})
    await conn.execute(text("DELETE FROM stores WHERE id = :id"), {"id": store_id})
