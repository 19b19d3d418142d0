"""Dashboard sign-in sessions: begin one for a verified credential, resume it from the
browser's token, end it. The token itself is never stored, only its hash."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy.ext.asyncio import AsyncConnection

from lrs.store import sessions as session_store
from lrs.store.database import Database
from lrs.store.sessions import Session as Session


def _hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def begin(db: Database, credential_key: str, seconds: int) -> tuple[str, str]:
    """A new session for the credential: (the browser's token, its CSRF token)."""
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)

    async def work(conn: AsyncConnection) -> None:
        await session_store.create(conn, _hash(token), credential_key, csrf, seconds)

    await db.write(work)
    return token, csrf


async def resume(db: Database, token: str) -> Session | None:
    """The live session the token stands for (None: unknown, expired or ended)."""
    return await db.read(lambda conn: session_store.get(conn, _hash(token)))


async def end(db: Database, token: str) -> None:
    async def work(conn: AsyncConnection) -> None:
        await session_store.delete(conn, _hash(token))

    await db.write(work)
