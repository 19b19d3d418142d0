"""Credentials: HTTP Basic key/secret pairs, each in one store, with scopes and an authority."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from lrs.jsontext import dumps


@dataclass(frozen=True)
class Credential:
    store_id: int
    key: str
    secret_hash: bytes
    label: str
    scopes: frozenset[str]
    authority: dict[str, Any]
    expires: datetime | None
    revoked: datetime | None


@dataclass(frozen=True)
class NewCredential:
    credential: Credential
    secret: str


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def default_authority(key: str, label: str, home_page: str) -> dict[str, Any]:
    authority: dict[str, Any] = {
        "objectType": "Agent",
        "account": {"homePage": home_page, "name": key},
    }
    if label:
        authority["name"] = label
    return authority


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
) -> NewCredential:
    """A new credential; the secret is returned here once and stored only as a hash."""
    key = key or secrets.token_urlsafe(18)
    secret = secret or secrets.token_urlsafe(32)
    authority = authority or default_authority(key, label, home_page)
    await conn.execute(
        text(
            "INSERT INTO credentials (store_id, key, secret_hash, label, scopes, authority, expires)"
            " VALUES (:store_id, :key, :hash, :label, :scopes, CAST(:authority AS jsonb), :expires)"
        ),
        {
            "store_id": store_id,
            "key": key,
            "hash": hash_secret(secret),
            "label": label,
            "scopes": sorted(set(scopes)),
            "authority": dumps(authority),
            "expires": expires,
        },
    )
    credential = Credential(
        store_id, key, hash_secret(secret), label, frozenset(scopes), authority, expires, None
    )
    return NewCredential(credential, secret)


async def get(conn: AsyncConnection, key: str) -> Credential | None:
    row = (
        await conn.execute(
            text(
                "SELECT store_id, key, secret_hash, label, scopes, authority, expires, revoked"
                " FROM credentials WHERE key = :key"
            ),
            {"key": key},
        )
    ).one_or_none()
    if row is None:
        return None
    return Credential(
        row.store_id,
        row.key,
        bytes(row.secret_hash),
        row.label,
        frozenset(row.scopes),
        row.authority,
        row.expires,
        row.revoked,
    )


async def list_for_store(conn: AsyncConnection, store_id: int) -> list[Credential]:
    rows = (
        await conn.execute(
            text(
                "SELECT store_id, key, secret_hash, label, scopes, authority, expires, revoked"
                " FROM credentials WHERE store_id = :store_id ORDER BY created, key"
            ),
            {"store_id": store_id},
        )
    ).all()
    return [
        Credential(
            r.store_id,
            r.key,
            bytes(r.secret_hash),
            r.label,
            frozenset(r.scopes),
            r.authority,
            r.expires,
            r.revoked,
        )
        for r in rows
    ]


async def revoke(conn: AsyncConnection, key: str) -> bool:
    result = await conn.execute(
        text("UPDATE credentials SET revoked = now() WHERE key = :key AND revoked IS NULL"),
        {"key": key},
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
