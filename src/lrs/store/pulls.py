"""Sources a store pulls statements from, and how far each pull has got."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


@dataclass(frozen=True)
class Source:
    id: int
    store_id: int
    name: str
    endpoint: str
    version: str
    credentials: bytes  # encrypted
    checkpoint: datetime | None  # the `stored` of the last statement taken
    every_seconds: int | None  # None: pulled only when asked
    last_run: datetime | None
    last_error: str | None
    pulled: int
    created: datetime


_COLUMNS = (
    "id, store_id, name, endpoint, version, credentials, checkpoint, every_seconds, last_run,"
    " last_error, pulled, created"
)


def _source(r: Any) -> Source:
    return Source(
        r.id,
        r.store_id,
        r.name,
        r.endpoint,
        r.version,
        bytes(r.credentials),
        r.checkpoint,
        r.every_seconds,
        r.last_run,
        r.last_error,
        r.pulled,
        r.created,
    )


async def save(conn: AsyncConnection, store_id: int, values: dict[str, Any]) -> Source:
    """Create the source, or change the one of that name (keeping how far it has got)."""
    row = (
        await conn.execute(
            text(f"""
            INSERT INTO pull_sources (store_id, name, endpoint, version, credentials, checkpoint,
                                      every_seconds)
            VALUES (:store, :name, :endpoint, :version, :credentials, :checkpoint, :every_seconds)
            ON CONFLICT (store_id, name) DO UPDATE
               SET endpoint = EXCLUDED.endpoint, version = EXCLUDED.version,
                   credentials = EXCLUDED.credentials, every_seconds = EXCLUDED.every_seconds,
                   checkpoint = COALESCE(pull_sources.checkpoint, EXCLUDED.checkpoint)
            RETURNING {_COLUMNS}
            """),
            {"store": store_id, **values},
        )
    ).one()
    return _source(row)


async def named(conn: AsyncConnection, store_id: int, name: str) -> Source | None:
    row = (
        await conn.execute(
            text(f"SELECT {_COLUMNS} FROM pull_sources WHERE store_id = :store AND name = :name"),
            {"store": store_id, "name": name},
        )
    ).one_or_none()
    return None if row is None else _source(row)


async def of_store(conn: AsyncConnection, store_id: int) -> list[Source]:
    rows = await conn.execute(
        text(f"SELECT {_COLUMNS} FROM pull_sources WHERE store_id = :store ORDER BY name"),
        {"store": store_id},
    )
    return [_source(r) for r in rows]


async def delete(conn: AsyncConnection, source_id: int) -> None:
    await conn.execute(text("DELETE FROM pull_sources WHERE id = :id"), {"id": source_id})


async def due(conn: AsyncConnection) -> list[Source]:
    """Scheduled sources whose next pull is due."""
    rows = await conn.execute(
        text(f"""
        SELECT {_COLUMNS} FROM pull_sources
         WHERE every_seconds IS NOT NULL
           AND (last_run IS NULL OR last_run + make_interval(secs => every_seconds) <= now())
         ORDER BY last_run NULLS FIRST
        """)
    )
    return [_source(r) for r in rows]


async def advanced(conn: AsyncConnection, source_id: int, checkpoint: datetime, taken: int) -> None:
    await conn.execute(
        text(
            "UPDATE pull_sources SET checkpoint = GREATEST(checkpoint, :checkpoint),"
            " pulled = pulled + :taken WHERE id = :id"
        ),
        {"id": source_id, "checkpoint": checkpoint, "taken": taken},
    )


async def finished(conn: AsyncConnection, source_id: int, error: str | None) -> None:
    await conn.execute(
        text("UPDATE pull_sources SET last_run = now(), last_error = :error WHERE id = :id"),
        {"id": source_id, "error": error},
    )
