"""Taking stored statements away (erasure, retention): the parts both need.

xAPI statements are immutable; the law that makes an erasure or a retention period
binding wins over that (see README, Personal data). What is taken away goes with every row
that holds it: its filter-index rows, its place in forwarding outboxes, the attachments no
statement left declares, and (by the caller, once everything has changed) its part of the
rollups.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncConnection

from lrs.store import attachments as attachment_store
from lrs.store import forwarding as forward_store
from lrs.store import statements as statement_store
from lrs.store.statements import Held
from lrs.xapi.attachments import declared


def declared_hashes(held: list[Held]) -> list[str]:
    """The attachment hashes these statements declare (lower case, as content is kept)."""
    return sorted({a["sha2"].lower() for h in held for a in declared(h.statement)})


async def orphaned(conn: AsyncConnection, store_id: int, held: list[Held]) -> list[str]:
    """The attachments of these statements that no other statement of the store declares."""
    return await attachment_store.unreferenced(conn, store_id, declared_hashes(held), [h.seq for h in held])


async def delete(conn: AsyncConnection, store_id: int, held: list[Held]) -> int:
    """Delete statements with every filter-index row they have (those a StatementRef
    inherited from its target included) and their place in the forwarding outboxes."""
    if not held:
        return 0
    refs = {h.id: _ref(h) for h in held}
    wanted = [r for r in refs.values() if r is not None]
    targets = {}
    if wanted:
        targets = {t.id: t.statement for t in await statement_store.by_ids(conn, store_id, wanted)}
    rows = []
    for h in held:
        ref = refs[h.id]
        rows.append((h.seq, statement_store.index_keys(h.statement, targets.get(ref) if ref else None)))
    deleted = await statement_store.delete(conn, store_id, rows)
    await forward_store.forget(conn, store_id, [h.seq for h in held])
    return deleted


def _ref(held: Held) -> uuid.UUID | None:
    obj = held.statement["object"]
    return uuid.UUID(obj["id"]) if obj.get("objectType") == "StatementRef" else None
