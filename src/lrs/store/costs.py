"""What activities cost to make and run, per store (for cost per completion)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from lrs.store.keys import analytics_key


@dataclass(frozen=True)
class Cost:
    activity: str
    amount: Decimal
    currency: str
    updated: datetime


async def put(conn: AsyncConnection, store_id: int, activity: str, amount: Decimal, currency: str) -> Cost:
    row = (
        await conn.execute(
            text("""
            INSERT INTO activity_costs (store_id, activity_key, activity_id, amount, currency)
            VALUES (:store, :key, :activity, :amount, :currency)
                ON CONFLICT (store_id, activity_key) DO UPDATE
                   SET amount = EXCLUDED.amount, currency = EXCLUDED.currency, updated = now()
            RETURNING activity_id, amount, currency, updated
            """),
            {
                "store": store_id,
                "key": analytics_key(activity),
                "activity": activity,
                "amount": amount,
                "currency": currency,
            },
        )
    ).one()
    return Cost(row.activity_id, row.amount, row.currency, row.updated)


async def get(conn: AsyncConnection, store_id: int, activity: str) -> Cost | None:
    row = (
        await conn.execute(
            text(
                "SELECT activity_id, amount, currency, updated FROM activity_costs"
                " WHERE store_id = :store AND activity_key = :key"
            ),
            {"store": store_id, "key": analytics_key(activity)},
        )
    ).first()
    return None if row is None else Cost(row.activity_id, row.amount, row.currency, row.updated)


async def list_all(conn: AsyncConnection, store_id: int) -> list[Cost]:
    rows = await conn.execute(
        text(
            "SELECT activity_id, amount, currency, updated FROM activity_costs"
            " WHERE store_id = :store ORDER BY activity_id"
        ),
        {"store": store_id},
    )
    return [Cost(r.activity_id, r.amount, r.currency, r.updated) for r in rows]


async def delete(conn: AsyncConnection, store_id: int, activity: str) -> bool:
    result = await conn.execute(
        text("DELETE FROM activity_costs WHERE store_id = :store AND activity_key = :key"),
        {"store": store_id, "key": analytics_key(activity)},
    )
    return result.rowcount > 0
