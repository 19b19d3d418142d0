"""Retention bookkeeping: where a store's retention period ends, and when it last ran."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


async def cutoff(conn: AsyncConnection, months: int, at: datetime | None = None) -> datetime:
    """The moment ``months`` calendar months before ``at`` (default: the transaction's time)."""
    value: datetime = (
        await conn.execute(
            text("SELECT COALESCE(CAST(:at AS timestamptz), now()) - make_interval(months => :m)"),
            {"m": months, "at": at},
        )
    ).scalar_one()
    return value


async def due(conn: AsyncConnection, store_ids: list[int], every_seconds: float) -> list[int]:
    """Those of the stores whose retention has not run within ``every_seconds``."""
    rows = await conn.execute(
        text("""
        SELECT u.id FROM unnest(CAST(:ids AS bigint[])) AS u(id)
          LEFT JOIN retention_runs r ON r.store_id = u.id
         WHERE r.last_run IS NULL OR r.last_run <= now() - make_interval(secs => :every)
         ORDER BY u.id
        """),
        {"ids": store_ids, "every": every_seconds},
    )
    return [r.id for r in rows]


async def ran(conn: AsyncConnection, store_id: int, deleted: int) -> None:
    await conn.execute(
        text(
            "INSERT INTO retention_runs (store_id, last_run, deleted) VALUES (:store, now(), :deleted)"
            " ON CONFLICT (store_id) DO UPDATE SET last_run = EXCLUDED.last_run, deleted = EXCLUDED.deleted"
        ),
        {"store": store_id, "deleted": deleted},
    )


async def last_run(conn: AsyncConnection, store_id: int) -> tuple[datetime, int] | None:
    """When retention last ran for the store, and how many statements it deleted then."""
    row = (
        await conn.execute(
            text("SELECT last_run, deleted FROM retention_runs WHERE store_id = :store"), {"store": store_id}
        )
    ).one_or_none()
    return None if row is None else (row.last_run, int(row.deleted))
