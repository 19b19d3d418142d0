"""The audit trail of admin actions: who did what, to which store, when."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from lrs.jsontext import dumps


@dataclass(frozen=True)
class Entry:
    id: int
    at: datetime
    actor: str
    action: str
    store: str | None
    target: str | None
    details: dict[str, Any]


async def record(
    conn: AsyncConnection,
    actor: str,
    action: str,
    store: str | None,
    target: str | None,
    details: dict[str, Any] | None = None,
) -> None:
    await conn.execute(
        text(
            "INSERT INTO audit_log (actor, action, store, target, details)"
            " VALUES (:actor, :action, :store, :target, CAST(:details AS jsonb))"
        ),
        {"actor": actor, "action": action, "store": store, "target": target, "details": dumps(details or {})},
    )


async def read(
    conn: AsyncConnection, limit: int, before: int | None = None, store: str | None = None
) -> list[Entry]:
    rows = await conn.execute(
        text(
            "SELECT id, at, actor, action, store, target, details FROM audit_log"
            " WHERE (CAST(:before AS bigint) IS NULL OR id < :before)"
            " AND (CAST(:store AS text) IS NULL OR store = :store)"
            " ORDER BY id DESC LIMIT :limit"
        ),
        {"limit": limit, "before": before, "store": store},
    )
    return [Entry(r.id, r.at, r.actor, r.action, r.store, r.target, r.details) for r in rows]
