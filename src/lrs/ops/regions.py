"""Regions: named groups of stores whose members share aggregate figures, and nothing else.

A store joins only while its own setting ``region_sharing`` allows it, and is counted only
while it still does: turning the setting off, or leaving, takes its figures out of every
answer at once (membership is read with each answer). A region credential (scope
``region/analytics``) is bound to one region and can read nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from lrs.config import Settings, store_settings
from lrs.ops.caller import Caller
from lrs.ops.stores import check_name, store_named
from lrs.scopes import REGION_ANALYTICS
from lrs.store import audit
from lrs.store import credentials as credential_store
from lrs.store import regions as region_store
from lrs.store.credentials import NewCredential
from lrs.store.database import Database
from lrs.store.regions import Region
from lrs.store.schema import DEFAULT_STORE_ID
from lrs.xapi.errors import Conflict, Forbidden, NotFound


@dataclass(frozen=True)
class RegionOut:
    name: str
    min_group_size: int
    created: datetime
    members: list[str]  # store names, in the order they joined
    sharing: list[str]  # those whose setting still allows sharing (counted in answers)


async def _named(conn: AsyncConnection, name: str) -> Region:
    region = await region_store.named(conn, name)
    if region is None:
        raise NotFound(f"no region named {name!r}")
    return region


async def _out(conn: AsyncConnection, region: Region) -> RegionOut:
    members = await region_store.members(conn, region.id)
    return RegionOut(
        region.name,
        region.min_group_size,
        region.created,
        [m.store for m in members],
        [m.store for m in members if store_settings(m.settings).region_sharing],
    )


async def create(db: Database, actor: str, name: str, min_group_size: int = 5) -> RegionOut:
    check_name(name)

    async def work(conn: AsyncConnection) -> RegionOut:
        if await region_store.named(conn, name) is not None:
            raise Conflict(f"a region named {name!r} exists")
        region = await region_store.create(conn, name, min_group_size)
        await audit.record(conn, actor, "region.create", None, name, {"min_group_size": min_group_size})
        return await _out(conn, region)

    return await db.write(work)


async def list_all(db: Database) -> list[RegionOut]:
    async def work(conn: AsyncConnection) -> list[RegionOut]:
        return [await _out(conn, r) for r in await region_store.list_all(conn)]

    return await db.read(work)


async def get(db: Database, name: str) -> RegionOut:
    async def work(conn: AsyncConnection) -> RegionOut:
        return await _out(conn, await _named(conn, name))

    return await db.read(work)


async def set_min_group_size(db: Database, actor: str, name: str, min_group_size: int) -> RegionOut:
    async def work(conn: AsyncConnection) -> RegionOut:
        region = await _named(conn, name)
        await region_store.set_min_group_size(conn, region.id, min_group_size)
        await audit.record(conn, actor, "region.settings", None, name, {"min_group_size": min_group_size})
        return await _out(conn, await _named(conn, name))

    return await db.write(work)


async def delete(db: Database, actor: str, name: str) -> None:
    """Delete a region; its credentials stop working at once."""

    async def work(conn: AsyncConnection) -> None:
        region = await _named(conn, name)
        await region_store.delete(conn, region.id)
        await credential_store.notify(conn, credential_store.EVERYONE)
        await audit.record(conn, actor, "region.delete", None, name, {})

    await db.write(work)


async def join(db: Database, actor: str, name: str, store: str) -> RegionOut:
    """Make a store a member; 409 unless the store's own setting allows sharing."""

    async def work(conn: AsyncConnection) -> RegionOut:
        region = await _named(conn, name)
        member = await store_named(conn, store)
        if not store_settings(member.settings).region_sharing:
            raise Conflict(
                f"store {store!r} does not share its figures: its admin must first set region_sharing=true"
            )
        if await region_store.join(conn, region.id, member.id):
            await audit.record(conn, actor, "region.join", store, name, {})
        return await _out(conn, region)

    return await db.write(work)


async def leave(db: Database, actor: str, name: str, store: str) -> RegionOut:
    async def work(conn: AsyncConnection) -> RegionOut:
        region = await _named(conn, name)
        member = await store_named(conn, store)
        if not await region_store.leave(conn, region.id, member.id):
            raise NotFound(f"store {store!r} is not a member of region {name!r}")
        await audit.record(conn, actor, "region.leave", store, name, {})
        return await _out(conn, region)

    return await db.write(work)


async def create_credential(
    db: Database, settings: Settings, actor: str, name: str, label: str = ""
) -> NewCredential:
    """A credential that reads this region's aggregates and nothing else. It is kept with the
    installation's default store, whose data its one scope never reaches."""

    async def work(conn: AsyncConnection) -> NewCredential:
        region = await _named(conn, name)
        new = await credential_store.create(
            conn,
            DEFAULT_STORE_ID,
            sorted(REGION_ANALYTICS),
            label,
            settings.authority_home_page,
            region_id=region.id,
        )
        details = {"key": new.credential.key, "label": label}
        await audit.record(conn, actor, "region.credential", None, name, details)
        return new

    return await db.write(work)


# --- what a region credential reads -----------------------------------------------------------


@dataclass(frozen=True)
class Sharing:
    """The region a credential reads, as it stands now: its sharing members, their names as
    the region shows them, and the smallest group it may show."""

    region: str
    store_ids: list[int]
    shown_as: dict[int, str]
    min_group: int


async def sharing(conn: AsyncConnection, who: Caller, name: str) -> Sharing:
    """The members counted in the region's answers; 403 unless the credential is this
    region's."""
    who.require(REGION_ANALYTICS)
    region = await region_store.named(conn, name)
    if region is None or who.credential.region_id != region.id:
        raise Forbidden(f"this credential does not read region {name!r}")
    counted = []
    for member in await region_store.members(conn, region.id):
        own = store_settings(member.settings)
        if own.region_sharing:
            counted.append((member, own))
    shown_as = {
        m.store_id: own.region_display_name or f"municipality {n}"
        for n, (m, own) in enumerate(counted, start=1)
    }
    # Never a smaller group than any member allows within its own store.
    min_group = max([region.min_group_size, *(own.min_group_size for _, own in counted)])
    return Sharing(region.name, [m.store_id for m, _ in counted], shown_as, min_group)
