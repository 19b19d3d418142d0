"""Canonical activity definitions, merged from the statements that carry them."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from lrs.jsontext import dumps
from lrs.store.keys import analytics_key
from lrs.xapi.activities import merge_definitions

# Language maps merge entry by entry; every other property is replaced by the newer one.
_UPSERT = text("""
INSERT INTO activities (store_id, key, activity_id, definition)
SELECT :store, u.key, u.id, u.definition
  FROM unnest(CAST(:keys AS uuid[]), CAST(:ids AS text[]), CAST(:defs AS jsonb[]))
       WITH ORDINALITY AS u(key, id, definition, n)
 ORDER BY u.n
    ON CONFLICT (store_id, key) DO UPDATE
   SET definition = activities.definition || EXCLUDED.definition || jsonb_strip_nulls(
           jsonb_build_object(
               'name', CASE WHEN EXCLUDED.definition ? 'name' THEN
                   COALESCE(activities.definition -> 'name', '{}') || (EXCLUDED.definition -> 'name')
               END,
               'description', CASE WHEN EXCLUDED.definition ? 'description' THEN
                   COALESCE(activities.definition -> 'description', '{}')
                   || (EXCLUDED.definition -> 'description')
               END)),
       updated = now()
 WHERE activities.definition IS DISTINCT FROM activities.definition || EXCLUDED.definition
""")


async def merge(conn: AsyncConnection, store_id: int, definitions: list[tuple[str, dict[str, Any]]]) -> None:
    """Fold definitions into the canonical ones. Rows are written in key order, so two
    concurrent batches sharing activities lock them in the same order and cannot deadlock."""
    merged: dict[UUID, tuple[str, dict[str, Any]]] = {}
    for activity_id, definition in definitions:
        key = analytics_key(activity_id)
        previous = merged.get(key)
        merged[key] = (activity_id, merge_definitions(previous[1], definition) if previous else definition)
    if not merged:
        return
    # Most statements repeat the definition already kept; skipping those rows spares a row
    # lock (held to commit) that concurrent batches naming the same activities would queue on.
    kept = await conn.execute(
        text(
            "SELECT key, definition FROM activities"
            " WHERE store_id = :store AND key = ANY(CAST(:keys AS uuid[]))"
        ),
        {"store": store_id, "keys": list(merged)},
    )
    for row in kept:
        if merge_definitions(row.definition, merged[row.key][1]) == row.definition:
            del merged[row.key]
    if not merged:
        return
    keys = sorted(merged)
    await conn.execute(
        _UPSERT,
        {
            "store": store_id,
            "keys": keys,
            "ids": [merged[k][0] for k in keys],
            "defs": [dumps(merged[k][1]) for k in keys],
        },
    )


async def get(conn: AsyncConnection, store_id: int, activity_id: str) -> dict[str, Any] | None:
    definition: dict[str, Any] | None = (
        await conn.execute(
            text("SELECT definition FROM activities WHERE store_id = :store AND key = :key"),
            {"store": store_id, "key": analytics_key(activity_id)},
        )
    ).scalar_one_or_none()
    return definition


async def get_many(
    conn: AsyncConnection, store_ids: list[int], activity_ids: set[str]
) -> list[tuple[int, str, dict[str, Any]]]:
    """The canonical definitions of these activities in these stores: (store, id, definition)."""
    if not activity_ids or not store_ids:
        return []
    rows = await conn.execute(
        text(
            "SELECT store_id, activity_id, definition FROM activities"
            " WHERE store_id = ANY(CAST(:stores AS bigint[])) AND key = ANY(CAST(:keys AS uuid[]))"
        ),
        {"stores": store_ids, "keys": [analytics_key(i) for i in activity_ids]},
    )
    return [(r.store_id, r.activity_id, r.definition) for r in rows]


async def export_page(
    conn: AsyncConnection, store_id: int, after: UUID | None, limit: int
) -> list[tuple[UUID, str, dict[str, Any]]]:
    """The store's next canonical definitions in key order, after the key ``after`` (None:
    from the first): (key, activity id, definition)."""
    rows = await conn.execute(
        text(
            "SELECT key, activity_id, definition FROM activities"
            " WHERE store_id = :store AND (CAST(:after AS uuid) IS NULL OR key > :after)"
            " ORDER BY key LIMIT :limit"
        ),
        {"store": store_id, "after": after, "limit": limit},
    )
    return [(r.key, r.activity_id, r.definition) for r in rows]
