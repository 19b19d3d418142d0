"""What the LRS knows of an agent: the names it has been sent under."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from lrs.store.keys import index_key

_NAMES = text("""
SELECT DISTINCT name FROM (
    SELECT s.statement -> 'actor' ->> 'name' AS name, s.statement -> 'actor' AS agent
      FROM statement_index i JOIN statements s ON s.store_id = i.store_id AND s.seq = i.seq
     WHERE i.store_id = :store AND i.key = CAST(:key AS uuid) AND NOT i.related
     ORDER BY i.seq DESC LIMIT 500
) recent WHERE name IS NOT NULL AND CAST(agent AS jsonb) @> CAST(:ifi AS jsonb)
""")


async def names(conn: AsyncConnection, store_id: int, ifi: str, ifi_json: str) -> list[str]:
    """Names under which this agent was the actor of its recent statements."""
    rows = await conn.execute(_NAMES, {"store": store_id, "key": index_key("agent", ifi), "ifi": ifi_json})
    return sorted(r.name for r in rows)
