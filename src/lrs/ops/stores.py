"""Stores: create, list, read, rename, delete, and their settings.

Every change is audited; a change that cached credentials carry (a deleted store, new
settings) is announced to every server process in the same transaction.
"""

from __future__ import annotations

import re

from sqlalchemy.ext.asyncio import AsyncConnection

from lrs.analytics import writes as analytics_writes
from lrs.config import Settings, StoreSettings, store_settings
from lrs.store import audit
from lrs.store import credentials as credential_store
from lrs.store import stores as store_store
from lrs.store.database import Database
from lrs.store.schema import DEFAULT_STORE_ID
from lrs.store.stores import Store as Store
from lrs.xapi.errors import BadRequest, Conflict, NotFound

# Store names go in URLs and command lines: letters, digits, '.', '_', '-'.
STORE_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"


def check_name(name: str) -> str:
    if not re.fullmatch(STORE_NAME, name):
        raise BadRequest(
            f"name: {name!r} is not a store name; use 1 to 100 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


async def store_named(conn: AsyncConnection, name: str) -> Store:
    """The store with this name, in the caller's transaction; 404 when there is none."""
    store = await store_store.get_by_name(conn, name)
    if store is None:
        raise NotFound(f"no store named {name!r}")
    return store


async def list_all(db: Database) -> list[Store]:
    return await db.read(store_store.list_all)


async def get(db: Database, name: str) -> Store:
    return await db.read(lambda conn: store_named(conn, name))


async def create(db: Database, actor: str, name: str) -> Store:
    check_name(name)

    async def work(conn: AsyncConnection) -> Store:
        if await store_store.name_taken(conn, name):
            raise Conflict(f"a store named {name!r} exists")
        store = await store_store.create(conn, name)
        await audit.record(conn, actor, "store.create", store.name, None)
        return store

    return await db.write(work)


async def rename(db: Database, actor: str, name: str, new_name: str) -> Store:
    """Rename a store; renaming it to its own name changes nothing and succeeds."""
    check_name(new_name)

    async def work(conn: AsyncConnection) -> Store:
        store = await store_named(conn, name)
        if new_name != name and await store_store.name_taken(conn, new_name):
            raise Conflict(f"a store named {new_name!r} exists")
        renamed = await store_store.rename(conn, store.id, new_name)
        await audit.record(conn, actor, "store.rename", new_name, None, {"from": name})
        return renamed

    return await db.write(work)


async def delete(db: Database, actor: str, name: str) -> None:
    """Delete a store and all its data; its credentials stop working at once."""

    async def work(conn: AsyncConnection) -> None:
        store = await store_named(conn, name)
        if store.id == DEFAULT_STORE_ID:
            raise Conflict("the default store cannot be deleted")
        await store_store.delete(conn, store.id)
        await credential_store.notify(conn, credential_store.EVERYONE)
        await audit.record(conn, actor, "store.delete", name, None)

    await db.write(work)


async def get_settings(db: Database, name: str) -> StoreSettings:
    return store_settings((await get(db, name)).settings)


async def set_settings(
    db: Database, settings: Settings, actor: str, name: str, new: StoreSettings
) -> StoreSettings:
    """Replace a store's settings. Its analytics periods are recounted in the new zone in the
    same transaction, and cached credentials (which carry the settings) are dropped."""

    async def work(conn: AsyncConnection) -> Store:
        store = await store_named(conn, name)
        kept = new.model_dump(exclude_defaults=True)
        updated = await store_store.update_settings(conn, store.id, kept)
        await analytics_writes.rezone(conn, store.id, new.zone(settings.default_timezone))
        await credential_store.notify(conn, credential_store.EVERYONE)
        await audit.record(conn, actor, "store.settings", name, None, kept)
        return updated

    return store_settings((await db.write(work)).settings)
