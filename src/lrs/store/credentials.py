"""Credentials: HTTP Basic key/secret pairs, each in one store, with scopes and an authority.

Every change is announced on the ``lrs_credentials`` channel (delivered at commit), so each
server process drops its cached copy at once.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from lrs.jsontext import dumps

CHANNEL = "lrs_credentials"
EVERYONE = "*"  # the notification payload that drops every cached credential


@dataclass(frozen=True)
class Credential:
    store_id: int
    key: str
    secret_hash: bytes
    label: str
    scopes: frozenset[str]
    authority: dict[str, Any]
    created: datetime
    expires: datetime | None
    revoked: datetime | None
    store_settings: dict[str, Any]
    store_pseudonym_secret: bytes = b""
    region_id: int | None = None  # a region credential's region


@dataclass(frozen=True)
class NewCredential:
    credential: Credential
    secret: str


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def _no_leading_dash(nbytes: int) -> str:
    """A random URL-safe token that never starts with "-", which a command line (``--key``,
    ``--secret``) would take for an option."""
    while True:
        token = secrets.token_urlsafe(nbytes)
        if not token.startswith("-"):
            return token


def new_key() -> str:
    return _no_leading_dash(18)


def new_secret() -> str:
    return _no_leading_dash(32)


def default_authority(key: str, label: str, home_page: str) -> dict[str, Any]:
    authority: dict[str, Any] = {
        "objectType": "Agent",
        "account": {"homePage": home_page, "name": key},
    }
    if label:
        authority["name"] = label
    return authority


_SELECT = """
SELECT c.store_id, c.key, c.secret_hash, c.label, c.scopes, c.authority, c.created, c.expires,
       c.revoked, s.settings AS store_settings, s.pseudonym_secret, c.region_id
  FROM credentials c JOIN stores s ON s.id = c.store_id
"""


def _credential(r: Any) -> Credential:
    return Credential(
        r.store_id,
        r.key,
        bytes(r.secret_hash),
        r.label,
        frozenset(r.scopes),
        r.authority,
        r.created,
        r.expires,
        r.revoked,
        r.store_settings,
        bytes(r.pseudonym_secret),
        r.region_id,
    )


async def notify(conn: AsyncConnection, key: str) -> None:
    await conn.execute(text("SELECT pg_notify(:channel, :key)"), {"channel": CHANNEL, "key": key})


async def create(
    conn: AsyncConnection,
    store_id: int,
    scopes: list[str],
    label: str,
    home_page: str,
    authority: dict[str, Any] | None = None,
    expires: datetime | None = None,
    key: str | None = None,
    secret: str | None = None,
    region_id: int | None = None,
) -> NewCredential:
    """A new credential; the secret is returned here once and stored only as a hash."""
    key = key or new_key()
    secret = secret or new_secret()
    authority = authority or default_authority(key, label, home_page)
    await conn.execute(
        text(
            "INSERT INTO credentials"
            " (store_id, key, secret_hash, label, scopes, authority, expires, region_id) VALUES"
            " (:store_id, :key, :hash, :label, :scopes, CAST(:authority AS jsonb), :expires, :region)"
        ),
        {
            "store_id": store_id,
            "key": key,
            "hash": hash_secret(secret),
            "label": label,
            "scopes": sorted(set(scopes)),
            "authority": dumps(authority),
            "expires": expires,
            "region": region_id,
        },
    )
    await notify(conn, key)
    credential = await get(conn, key)
    assert credential is not None
    return NewCredential(credential, secret)


async def get(conn: AsyncConnection, key: str) -> Credential | None:
    row = (await conn.execute(text(_SELECT + " WHERE c.key = :key"), {"key": key})).one_or_none()
    return None if row is None else _credential(row)


async def list_for_store(conn: AsyncConnection, store_id: int) -> list[Credential]:
    rows = (
        await conn.execute(
            text(_SELECT + " WHERE c.store_id = :store_id ORDER BY c.created, c.key"),
            {"store_id": store_id},
        )
    ).all()
    return [_credential(r) for r in rows]


async def has_admin(conn: AsyncConnection) -> bool:
    found = await conn.execute(
        text("SELECT 1 FROM credentials WHERE 'admin' = ANY(scopes) AND revoked IS NULL LIMIT 1")
    )
    return found.scalar_one_or_none() is not None


async def revoke(conn: AsyncConnection, key: str) -> bool:
    result = await conn.execute(
        text("UPDATE credentials SET revoked = now() WHERE key = :key AND revoked IS NULL"),
        {"key": key},
    )
    await notify(conn, key)
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def rotate(conn: AsyncConnection, key: str) -> str | None:
    """Give a live credential a new secret (the old one stops working); None if not found."""
    secret = new_secret()
    result = await conn.execute(
        text("UPDATE credentials SET secret_hash = :hash WHERE key = :key AND revoked IS NULL"),
        {"key": key, "hash": hash_secret(secret)},
    )
    await notify(conn, key)
    return secret if result.rowcount else None  # type: ignore[attr-defined]


async def set_secret(conn: AsyncConnection, key: str, secret: str) -> None:
    await conn.execute(
        text("UPDATE credentials SET secret_hash = :hash WHERE key = :key"),
        {"key": key, "hash": hash_secret(secret)},
    )
    await notify(conn, key)
