"""Attachment content, stored once per store by its SHA-2, in chunks so it streams both ways."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import IO

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

CHUNK_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Stored:
    sha2: str
    content_type: str
    length: int


async def save(
    conn: AsyncConnection,
    store_id: int,
    sha2: str,
    content_type: str,
    length: int,
    content: IO[bytes],
) -> None:
    """Store the content unless this store already has it; reads ``content`` chunk by chunk."""
    inserted = (
        await conn.execute(
            text(
                "INSERT INTO attachments (store_id, sha2, content_type, length)"
                " VALUES (:store, :sha2, :content_type, :length)"
                " ON CONFLICT DO NOTHING RETURNING sha2"
            ),
            {"store": store_id, "sha2": sha2, "content_type": content_type, "length": length},
        )
    ).scalar_one_or_none()
    if inserted is None:
        return
    content.seek(0)
    n = 0
    while True:
        chunk = content.read(CHUNK_BYTES)
        if not chunk and n > 0:
            break
        await conn.execute(
            text("INSERT INTO attachment_chunks (store_id, sha2, n, data) VALUES (:store, :sha2, :n, :data)"),
            {"store": store_id, "sha2": sha2, "n": n, "data": chunk},
        )
        n += 1
        if not chunk:
            break


async def find(conn: AsyncConnection, store_id: int, hashes: list[str]) -> list[Stored]:
    if not hashes:
        return []
    rows = await conn.execute(
        text(
            "SELECT sha2, content_type, length FROM attachments"
            " WHERE store_id = :store AND sha2 = ANY(CAST(:hashes AS text[])) ORDER BY sha2"
        ),
        {"store": store_id, "hashes": hashes},
    )
    return [Stored(r.sha2, r.content_type, r.length) for r in rows]


async def chunks(conn: AsyncConnection, store_id: int, sha2: str) -> AsyncIterator[bytes]:
    """The content, one stored chunk at a time."""
    n = 0
    while True:
        data = (
            await conn.execute(
                text(
                    "SELECT data FROM attachment_chunks WHERE store_id = :store AND sha2 = :sha2 AND n = :n"
                ),
                {"store": store_id, "sha2": sha2, "n": n},
            )
        ).scalar_one_or_none()
        if data is None:
            return
        yield bytes(data)
        n += 1
