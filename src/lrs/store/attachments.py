"""Attachment content, stored once per store by its SHA-2, in chunks so it streams both ways."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
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
    credential: str,
    sha2: str,
    content_type: str,
    length: int,
    content: IO[bytes],
) -> None:
    """Store the content unless this store already has it; reads ``content`` chunk by chunk.

    The credential is recorded as one that sent this content, whether it was new or not.
    """
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
    await conn.execute(
        text(
            "INSERT INTO attachment_senders (store_id, sha2, credential)"
            " VALUES (:store, :sha2, :credential) ON CONFLICT DO NOTHING"
        ),
        {"store": store_id, "sha2": sha2, "credential": credential},
    )
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


async def find(
    conn: AsyncConnection, store_id: int, hashes: list[str], sent_by: str | None = None
) -> list[Stored]:
    """The stored attachments among ``hashes``; with ``sent_by``, only content that credential sent."""
    if not hashes:
        return []
    sender = (
        " AND EXISTS (SELECT FROM attachment_senders w WHERE w.store_id = a.store_id"
        " AND w.sha2 = a.sha2 AND w.credential = :credential)"
        if sent_by is not None
        else ""
    )
    rows = await conn.execute(
        text(
            "SELECT a.sha2, a.content_type, a.length FROM attachments a"
            f" WHERE a.store_id = :store AND a.sha2 = ANY(CAST(:hashes AS text[])){sender} ORDER BY a.sha2"
        ),
        {"store": store_id, "hashes": hashes, "credential": sent_by},
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


async def export_page(conn: AsyncConnection, store_id: int, after: str, limit: int) -> list[Stored]:
    """The store's next attachments in hash order, after ``after``."""
    rows = await conn.execute(
        text(
            "SELECT sha2, content_type, length FROM attachments"
            " WHERE store_id = :store AND sha2 > :after ORDER BY sha2 LIMIT :limit"
        ),
        {"store": store_id, "after": after, "limit": limit},
    )
    return [Stored(r.sha2, r.content_type, r.length) for r in rows]


async def unreferenced(
    conn: AsyncConnection, store_id: int, hashes: list[str], leaving_out: Sequence[int] = ()
) -> list[str]:
    """Those of ``hashes`` (lower case) that no statement of the store declares but those
    ``leaving_out`` (seqs: the ones about to go).

    No index leads from a hash to its statements, so this reads the store's statements (those
    without attachments give ``json_array_elements`` a NULL, and so no rows, after one parse of
    their text); it is asked only when statements with attachments are removed.
    """
    if not hashes:
        return []
    rows = await conn.execute(
        text("""
        SELECT h.sha2 FROM unnest(CAST(:hashes AS text[])) AS h(sha2)
         WHERE NOT EXISTS (
               SELECT FROM statements s, json_array_elements(s.statement -> 'attachments') a
                WHERE s.store_id = :store AND s.seq <> ALL(CAST(:leaving AS bigint[]))
                  AND lower(a ->> 'sha2') = h.sha2)
        """),
        {"store": store_id, "hashes": hashes, "leaving": list(leaving_out)},
    )
    return sorted(r.sha2 for r in rows)


async def delete(conn: AsyncConnection, store_id: int, hashes: list[str]) -> int:
    """Delete stored content (its chunks and senders go with it)."""
    if not hashes:
        return 0
    result = await conn.execute(
        text("DELETE FROM attachments WHERE store_id = :store AND sha2 = ANY(CAST(:hashes AS text[]))"),
        {"store": store_id, "hashes": hashes},
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
