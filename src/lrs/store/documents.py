"""The document store: State, Activity Profile and Agent Profile documents as bytes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from lrs.xapi.documents import Address, Kind


@dataclass(frozen=True)
class Document:
    content: bytes
    content_type: str
    etag: str
    updated: datetime


async def lock(conn: AsyncConnection, store_id: int, address: Address) -> None:
    """Serialise writers of one document until the transaction ends (across processes)."""
    await conn.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, :store))"),
        {"key": address.owner_hash().hex() + (address.doc_id or ""), "store": store_id},
    )


async def get(conn: AsyncConnection, store_id: int, address: Address) -> Document | None:
    row = (
        await conn.execute(
            text(
                "SELECT content, content_type, etag, updated FROM documents"
                " WHERE store_id = :store AND owner_hash = :owner AND doc_id = :doc_id"
            ),
            {"store": store_id, "owner": address.owner_hash(), "doc_id": address.doc_id},
        )
    ).one_or_none()
    if row is None:
        return None
    return Document(bytes(row.content), row.content_type, row.etag, row.updated)


async def list_ids(
    conn: AsyncConnection, store_id: int, address: Address, since: datetime | None
) -> list[tuple[str, datetime]]:
    """Ids (and update times) of the owner's documents, updated after ``since`` if given."""
    rows = await conn.execute(
        text(
            "SELECT doc_id, updated FROM documents WHERE store_id = :store"
            " AND owner_hash = :owner AND (CAST(:since AS timestamptz) IS NULL"
            " OR updated > CAST(:since AS timestamptz)) ORDER BY doc_id"
        ),
        {"store": store_id, "owner": address.owner_hash(), "since": since},
    )
    return [(r.doc_id, r.updated) for r in rows]


async def save(
    conn: AsyncConnection,
    store_id: int,
    address: Address,
    content: bytes,
    content_type: str,
    etag: str,
    updated: datetime | None = None,
) -> datetime:
    """Create or replace a document; returns its new ``updated`` time (now, unless a restored
    document keeps its own)."""
    saved: datetime = (
        await conn.execute(
            text("""
        INSERT INTO documents (store_id, owner_hash, doc_id, kind, activity_id, agent_key,
                               registration, content, content_type, etag, updated)
        VALUES (:store, :owner, :doc_id, :kind, :activity_id, :agent_key, :registration,
                :content, :content_type, :etag,
                COALESCE(CAST(:updated AS timestamptz), clock_timestamp()))
        ON CONFLICT (store_id, owner_hash, doc_id) DO UPDATE
           SET content = EXCLUDED.content, content_type = EXCLUDED.content_type,
               etag = EXCLUDED.etag, updated = EXCLUDED.updated
        RETURNING updated
        """),
            {
                "store": store_id,
                "owner": address.owner_hash(),
                "doc_id": address.doc_id,
                "kind": int(address.kind),
                "activity_id": address.activity_id,
                "agent_key": address.agent_key,
                "registration": address.registration,
                "content": content,
                "content_type": content_type,
                "etag": etag,
                "updated": updated,
            },
        )
    ).scalar_one()
    return saved


async def delete(conn: AsyncConnection, store_id: int, address: Address) -> int:
    """Delete one document, or every document of the owner when the address has no id."""
    if address.doc_id is None:
        result = await conn.execute(
            text("DELETE FROM documents WHERE store_id = :store AND owner_hash = :owner"),
            {"store": store_id, "owner": address.owner_hash()},
        )
    else:
        result = await conn.execute(
            text(
                "DELETE FROM documents WHERE store_id = :store AND owner_hash = :owner AND doc_id = :doc_id"
            ),
            {"store": store_id, "owner": address.owner_hash(), "doc_id": address.doc_id},
        )
    return int(result.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Kept:
    """A document with its address, as an export carries it."""

    address: Address
    document: Document
    owner_hash: bytes


_KEPT = "owner_hash, doc_id, kind, activity_id, agent_key, registration, content, content_type, etag, updated"


def _kept(r: Any) -> Kept:
    return Kept(
        Address(Kind(r.kind), r.activity_id, r.agent_key, r.registration, r.doc_id),
        Document(bytes(r.content), r.content_type, r.etag, r.updated),
        bytes(r.owner_hash),
    )


async def export_page(
    conn: AsyncConnection, store_id: int, after: tuple[bytes, str] | None, limit: int
) -> list[Kept]:
    """The store's next documents in key order, after ``after`` (owner_hash, doc_id)."""
    owner, doc_id = after if after is not None else (b"", "")
    rows = await conn.execute(
        text(
            f"SELECT {_KEPT} FROM documents"
            " WHERE store_id = :store AND (owner_hash, doc_id) > (:owner, :doc_id)"
            " ORDER BY owner_hash, doc_id LIMIT :limit"
        ),
        {"store": store_id, "owner": owner, "doc_id": doc_id, "limit": limit},
    )
    return [_kept(r) for r in rows]


async def of_agents(conn: AsyncConnection, store_id: int, agent_keys: list[str]) -> list[Kept]:
    """The State and Agent Profile documents of any of these agents (IFI keys)."""
    rows = await conn.execute(
        text(
            f"SELECT {_KEPT} FROM documents"
            " WHERE store_id = :store AND agent_key = ANY(CAST(:keys AS text[]))"
            " ORDER BY kind, activity_id, doc_id"
        ),
        {"store": store_id, "keys": agent_keys},
    )
    return [_kept(r) for r in rows]


async def count_of_agents(conn: AsyncConnection, store_id: int, agent_keys: list[str]) -> int:
    result = await conn.execute(
        text(
            "SELECT count(*) FROM documents"
            " WHERE store_id = :store AND agent_key = ANY(CAST(:keys AS text[]))"
        ),
        {"store": store_id, "keys": agent_keys},
    )
    return int(result.scalar_one())


async def delete_of_agents(conn: AsyncConnection, store_id: int, agent_keys: list[str]) -> int:
    result = await conn.execute(
        text("DELETE FROM documents WHERE store_id = :store AND agent_key = ANY(CAST(:keys AS text[]))"),
        {"store": store_id, "keys": agent_keys},
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
