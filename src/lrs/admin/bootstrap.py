"""The first admin credential: from settings, or made and printed on the first run."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from lrs.config import Settings
from lrs.store import audit
from lrs.store import credentials as credential_store
from lrs.store.database import Database
from lrs.store.schema import DEFAULT_STORE_ID

ADMIN_LABEL = "administrator"


async def ensure_admin(db: Database, settings: Settings) -> None:
    """Make the credential named by LRS_ADMIN_KEY exist with LRS_ADMIN_SECRET and `admin`."""
    key, secret = settings.admin_key, settings.admin_secret
    if not key:
        return
    if not secret or len(secret) < 16:
        raise SystemExit("LRS_ADMIN_SECRET must be set, at least 16 characters, with LRS_ADMIN_KEY")

    async def work(conn: AsyncConnection) -> None:
        existing = await credential_store.get(conn, key)
        if existing is None:
            await credential_store.create(
                conn,
                DEFAULT_STORE_ID,
                ["admin"],
                ADMIN_LABEL,
                settings.authority_home_page,
                key=key,
                secret=secret,
            )
            await audit.record(conn, "settings", "credential.create", "default", key, {"scopes": ["admin"]})
        elif existing.secret_hash != credential_store.hash_secret(secret):
            await credential_store.set_secret(conn, key, secret)
            await audit.record(conn, "settings", "credential.rotate", "default", key)

    await db.write(work)


async def first_admin(db: Database, settings: Settings) -> credential_store.NewCredential | None:
    """On a database with no admin credential, make one (its secret is for printing once)."""

    async def work(conn: AsyncConnection) -> credential_store.NewCredential | None:
        if await credential_store.has_admin(conn):
            return None
        new = await credential_store.create(
            conn, DEFAULT_STORE_ID, ["admin"], ADMIN_LABEL, settings.authority_home_page
        )
        await audit.record(
            conn, "lrs serve", "credential.create", "default", new.credential.key, {"scopes": ["admin"]}
        )
        return new

    return await db.write(work)
