"""Dashboard sessions: which credential a browser signed in with, until when."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection


@dataclass(frozen=True)
class Session:
    credential_key: str
    csrf: str
    expires: datetime


async def create(conn: AsyncConnection, token_hash: bytes, key: str, csrf: str, seconds: int) -> None:
    # Expired sessions are removed as new ones begin: the table holds live sign-ins only.
    await conn.execute(text("DELETE FROM dashboard_sessions WHERE expires < now()"))
    await conn.execute(
        text(
            "INSERT INTO dashboard_sessions (token_hash, credential_key, csrf, expires)"
            " VALUES (:hash, :key, :csrf, now() + make_interval(secs => :seconds))"
        ),
        {"hash": token_hash, "key": key, "csrf": csrf, "seconds": seconds},
    )


async def get(conn: AsyncConnection, token_hash: bytes) -> Session | None:
    row = (
        await conn.execute(
            text(
                "SELECT credential_key, csrf, expires FROM dashboard_sessions"
                " WHERE token_hash = :hash AND expires > now()"
            ),
            {"hash": token_hash},
        )
    ).first()
    return None if row is None else Session(row.credential_key, row.csrf, row.expires)


async def delete(conn: AsyncConnection, token_hash: bytes) -> None:
    await conn.execute(text("DELETE FROM dashboard_sessions WHERE token_hash = :hash"), {"hash": token_hash})
