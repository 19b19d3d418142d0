"""State, Activity Profile and Agent Profile documents: read, list, write (PUT replaces,
POST merges JSON objects), delete; each write under the document's row lock, so concurrent
writers see each other's ETags."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from lrs.ops.caller import Caller
from lrs.store import documents as document_store
from lrs.store.database import Database
from lrs.store.documents import Document
from lrs.xapi.documents import JSON, Address, check_preconditions, etag, merge
from lrs.xapi.versions import Version


@dataclass(frozen=True)
class Preconditions:
    """What the request said about the document it expects (RFC 7232)."""

    if_match: str | None = None
    if_none_match: str | None = None


def _owned(who: Caller, address: Address) -> Address:
    """The address as the store keeps it: in a pseudonymising store, under the agent's
    pseudonym, so a document is found by the agent's own identifier and holds no identity."""
    if who.pseudonym is None or not address.agent_key:
        return address
    return replace(address, agent_key=who.pseudonym.key(address.agent_key))


async def get(db: Database, who: Caller, address: Address) -> Document | None:
    address = _owned(who, address)
    return await db.read(
        lambda conn: document_store.get(conn, who.store_id, address), reader=who.key, autocommit=True
    )


async def list_ids(
    db: Database, who: Caller, address: Address, since: datetime | None
) -> list[tuple[str, datetime]]:
    """(id, updated) of the owner's documents, updated after ``since`` when given."""
    address = _owned(who, address)
    return await db.read(
        lambda conn: document_store.list_ids(conn, who.store_id, address, since),
        reader=who.key,
        autocommit=True,
    )


async def write(
    db: Database,
    who: Caller,
    address: Address,
    method: str,
    version: Version,
    content: bytes,
    content_type: str,
    preconditions: Preconditions,
) -> None:
    """PUT replaces the document; POST merges a JSON object into an existing JSON one."""
    address = _owned(who, address)

    async def work(conn: AsyncConnection) -> None:
        await document_store.lock(conn, who.store_id, address)
        current = await document_store.get(conn, who.store_id, address)
        check_preconditions(
            method,
            address.kind,
            version,
            _etag_of(current),
            preconditions.if_match,
            preconditions.if_none_match,
            create_without_precondition=who.settings.profile_put_creates_without_precondition,
        )
        new_content, new_type = content, content_type
        if method == "POST" and current is not None:
            new_content = merge(current.content, current.content_type, content, content_type)
            new_type = JSON
        await document_store.save(conn, who.store_id, address, new_content, new_type, etag(new_content))

    await db.write(work, writer=who.key)


async def delete(
    db: Database, who: Caller, address: Address, version: Version, preconditions: Preconditions
) -> None:
    """Delete one document, or (State, without an id) all of the owner's."""
    address = _owned(who, address)

    async def work(conn: AsyncConnection) -> None:
        if address.doc_id is not None:
            await document_store.lock(conn, who.store_id, address)
            current = await document_store.get(conn, who.store_id, address)
            check_preconditions(
                "DELETE",
                address.kind,
                version,
                _etag_of(current),
                preconditions.if_match,
                preconditions.if_none_match,
            )
        await document_store.delete(conn, who.store_id, address)

    await db.write(work, writer=who.key)


def _etag_of(doc: Document | None) -> str | None:
    return None if doc is None else doc.etag
