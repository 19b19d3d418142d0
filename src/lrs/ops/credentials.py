"""Credentials: create, list, read, rotate and revoke; the first admin credential.

Every change is audited under the credential's store and announced to every server process
(the store layer sends the notification in the same transaction).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncConnection

from lrs.config import Settings
from lrs.ops.stores import store_named
from lrs.scopes import check_scopes
from lrs.store import audit
from lrs.store import credentials as credential_store
from lrs.store import stores as store_store
from lrs.store.credentials import Credential as Credential
from lrs.store.credentials import NewCredential as NewCredential
from lrs.store.credentials import hash_secret as hash_secret
from lrs.store.database import Database
from lrs.store.schema import DEFAULT_STORE_ID
from lrs.xapi.errors import BadRequest, Conflict, NotFound


class CredentialOut(BaseModel):
    """A credential as the admin API and the CLI show it (never its secret)."""

    key: str
    label: str
    scopes: list[str]
    authority: dict[str, Any]
    created: datetime
    expires: datetime | None
    revoked: datetime | None

    @classmethod
    def of(cls, c: Credential) -> CredentialOut:
        return cls(
            key=c.key,
            label=c.label,
            scopes=sorted(c.scopes),
            authority=c.authority,
            created=c.created,
            expires=c.expires,
            revoked=c.revoked,
        )


CHANNEL = credential_store.CHANNEL  # where credential changes are announced
EVERYONE = credential_store.EVERYONE  # the announcement that drops every cached credential
ADMIN_LABEL = "administrator"
# A key chosen by hand: it goes on command lines and in Basic credentials, so nothing that
# starts an option or needs quoting.
KEY = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]{7,199}")


async def lookup(db: Database, key: str) -> Credential | None:
    """The credential with this key, for authentication (None when there is none)."""
    return await db.read(lambda conn: credential_store.get(conn, key))


async def create(
    db: Database,
    settings: Settings,
    actor: str,
    store: str,
    scopes: list[str],
    label: str = "",
    *,
    authority: dict[str, Any] | None = None,
    expires: datetime | None = None,
    key: str | None = None,
    secret: str | None = None,
) -> NewCredential:
    """A new credential in ``store``; its secret is in the result, once."""
    scopes = check_scopes(scopes)
    if "region/analytics" in scopes:
        raise BadRequest(
            "scopes: region/analytics belongs to a region; make it with `lrs region credentials`"
        )
    if expires is not None and expires <= datetime.now(UTC):
        raise BadRequest(f"expires: {expires.isoformat()} has passed; give a time in the future")
    if key is not None and not KEY.fullmatch(key):
        raise BadRequest("key: use 8 to 200 letters, digits, '.', '_' or '-', not starting with '-'")

    async def work(conn: AsyncConnection) -> NewCredential:
        found = await store_named(conn, store)
        new = await credential_store.create(
            conn,
            found.id,
            scopes,
            label,
            settings.authority_home_page,
            authority=authority,
            expires=expires,
            key=key,
            secret=secret,
        )
        details = {
            "scopes": sorted(set(scopes)),
            "label": label,
            "expires": expires.isoformat() if expires else None,
        }
        await audit.record(conn, actor, "credential.create", store, new.credential.key, details)
        return new

    return await db.write(work)


async def list_for_store(db: Database, store: str) -> list[Credential]:
    async def work(conn: AsyncConnection) -> list[Credential]:
        return await credential_store.list_for_store(conn, (await store_named(conn, store)).id)

    return await db.read(work)


async def get(db: Database, store: str, key: str) -> Credential:
    async def work(conn: AsyncConnection) -> Credential:
        return await _credential_in(conn, key, store)

    return await db.read(work)


async def rotate(db: Database, actor: str, key: str, store: str | None = None) -> str:
    """A new secret for a live credential (the old one stops working at once)."""

    async def work(conn: AsyncConnection) -> str:
        credential = await _credential_in(conn, key, store)
        secret = await credential_store.rotate(conn, key)
        if secret is None:
            raise Conflict(f"credential {key!r} is revoked")
        await audit.record(conn, actor, "credential.rotate", await _store_name(conn, credential), key)
        return secret

    return await db.write(work)


async def revoke(db: Database, actor: str, key: str, store: str | None = None) -> bool:
    """Revoke a credential, at once on every server process; False when it already was."""

    async def work(conn: AsyncConnection) -> bool:
        credential = await _credential_in(conn, key, store)
        if not await credential_store.revoke(conn, key):
            return False
        await audit.record(conn, actor, "credential.revoke", await _store_name(conn, credential), key)
        return True

    return await db.write(work)


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


async def first_admin(db: Database, settings: Settings) -> NewCredential | None:
    """On a database with no admin credential, make one (its secret is for printing once)."""

    async def work(conn: AsyncConnection) -> NewCredential | None:
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


async def _credential_in(conn: AsyncConnection, key: str, store: str | None) -> Credential:
    """The credential, which must belong to ``store`` when one is named."""
    credential = await credential_store.get(conn, key)
    if store is not None:
        found = await store_named(conn, store)
        if credential is None or credential.store_id != found.id:
            raise NotFound(f"no credential {key!r} in store {store!r}")
    if credential is None:
        raise NotFound(f"no credential {key!r}")
    return credential


async def _store_name(conn: AsyncConnection, credential: Credential) -> str:
    store = await store_store.get(conn, credential.store_id)
    assert store is not None  # a credential's store outlives it (ON DELETE CASCADE)
    return store.name
