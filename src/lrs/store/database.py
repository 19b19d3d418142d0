"""The database as the API sees it: transactions with retry, and errors mapped to xAPI ones."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from lrs.xapi.errors import BadRequest, Unavailable

T = TypeVar("T")
log = logging.getLogger(__name__)

# Deadlock and serialization failures: the transaction is safe to run again.
_RETRYABLE = {"40P01", "40001"}
_ATTEMPTS = 4


def _sqlstate(exc: DBAPIError) -> str | None:
    orig = exc.orig
    state = getattr(orig, "sqlstate", None) or getattr(getattr(orig, "__cause__", None), "sqlstate", None)
    return state if isinstance(state, str) else None


class Database:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def write(
        self,
        work: Callable[[AsyncConnection], Awaitable[T]],
        *,
        repeatable_read: bool = False,
        after_lock: int | None = None,
    ) -> T:
        """Run ``work`` in one transaction, committed before returning; retried on deadlock
        and serialization failures. ``repeatable_read``: one snapshot for the whole of it.
        ``after_lock``: an advisory lock key, held from before the transaction begins (so its
        snapshot is taken after the lock is granted) until it ends."""
        for attempt in range(_ATTEMPTS):
            try:
                async with self.engine.connect() as conn:
                    if after_lock is not None:
                        await conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": after_lock})
                        await conn.commit()
                    try:
                        if repeatable_read:
                            await conn.execution_options(isolation_level="REPEATABLE READ")
                        async with conn.begin():
                            return await work(conn)
                    finally:
                        if after_lock is not None:
                            await _release(conn, after_lock)
            except DBAPIError as exc:
                if _sqlstate(exc) in _RETRYABLE and attempt + 1 < _ATTEMPTS:
                    log.warning("transaction retried after %s", _sqlstate(exc))
                    await asyncio.sleep(0.01 * (attempt + 1))
                    continue
                raise _translate(exc) from exc
            except (OSError, ConnectionError) as exc:
                raise Unavailable("the database is unavailable; try again") from exc
        raise AssertionError("unreachable")

    async def read(self, work: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        """Run ``work`` on a connection in a read-only transaction."""
        try:
            async with self.engine.connect() as conn:
                return await work(conn)
        except DBAPIError as exc:
            raise _translate(exc) from exc
        except (OSError, ConnectionError) as exc:
            raise Unavailable("the database is unavailable; try again") from exc

    async def ping(self) -> None:
        async def one(conn: AsyncConnection) -> None:
            await conn.execute(text("SELECT 1"))

        await self.read(one)

    async def instance_secret(self) -> bytes:
        async def fetch(conn: AsyncConnection) -> bytes:
            return bytes((await conn.execute(text("SELECT secret FROM instance"))).scalar_one())

        return await self.read(fetch)


async def now(conn: AsyncConnection) -> datetime:
    """The transaction's time: what ``now()`` stamps rows with in it."""
    return (await conn.execute(text("SELECT now()"))).scalar_one()  # type: ignore[no-any-return]


async def _release(conn: AsyncConnection, key: int) -> None:
    """Give a session advisory lock back; a connection that cannot is closed instead of
    returned to the pool, since it would hold the lock for as long as it lived."""
    try:
        if not conn.invalidated:
            await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            await conn.commit()
            return
    except Exception:
        log.warning("could not release advisory lock %s; closing the connection", key)
    await conn.invalidate()


def _translate(exc: DBAPIError) -> Exception:
    """The xAPI error a database failure stands for (400 for data it cannot hold, 503 for a
    lost connection); other failures stay as they are."""
    state = _sqlstate(exc)
    if state is not None and state.startswith("22"):
        # Data exceptions: a value PostgreSQL cannot hold, such as the NUL character in text.
        return BadRequest(
            "the request holds a value that cannot be stored (for example the NUL character \\u0000)"
        )
    if isinstance(exc, OperationalError | InterfaceError) or exc.connection_invalidated:
        return Unavailable("the database is unavailable; try again")
    if state is not None and (state.startswith("08") or state.startswith("57P")):
        return Unavailable("the database is unavailable; try again")
    return exc
