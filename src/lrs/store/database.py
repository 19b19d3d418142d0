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

from lrs.observability import PRIMARY_READS, REPLICA_READS
from lrs.store import replicas as replica_store
from lrs.store.bulk import RaceLost
from lrs.store.replicas import Replicas
from lrs.store.statements import CONSISTENT_THROUGH_OPTION, WAL_POSITION_OPTION
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


class _OnPrimary(Exception):
    """No replica may answer this read."""


class Database:
    def __init__(self, engine: AsyncEngine, replicas: Replicas | None = None) -> None:
        self.engine = engine
        self.replicas = replicas or Replicas([], 0.0)

    async def write(
        self,
        work: Callable[[AsyncConnection], Awaitable[T]],
        *,
        repeatable_read: bool = False,
        after_lock: int | None = None,
        writer: str | None = None,
    ) -> T:
        """Run ``work`` in one transaction, committed before returning; retried on deadlock
        and serialization failures and on a :class:`RaceLost`. ``repeatable_read``: one
        snapshot for the whole of it. ``after_lock``: an advisory lock key, held from before
        the transaction begins (so its snapshot is taken after the lock is granted) until it
        ends. ``writer``: the credential whose write this is; with read replicas, its reads go
        to the primary until a replica has replayed the write."""
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
                            done = await work(conn)
                        if writer is not None and self.replicas:
                            await _remember_write(conn, writer)
                        return done
                    finally:
                        if after_lock is not None:
                            await _release(conn, after_lock)
            except RaceLost as exc:
                if attempt + 1 < _ATTEMPTS:
                    log.warning("transaction retried after a lost race (%s)", exc)
                    continue
                raise Unavailable("the data changed under this request too often; try again") from exc
            except DBAPIError as exc:
                if _sqlstate(exc) in _RETRYABLE and attempt + 1 < _ATTEMPTS:
                    log.warning("transaction retried after %s", _sqlstate(exc))
                    await asyncio.sleep(0.01 * (attempt + 1))
                    continue
                raise _translate(exc) from exc
            except (OSError, ConnectionError) as exc:
                raise Unavailable("the database is unavailable; try again") from exc
        raise AssertionError("unreachable")

    async def read(
        self,
        work: Callable[[AsyncConnection], Awaitable[T]],
        *,
        reader: str | None = None,
        replayed: int | None = None,
        autocommit: bool = False,
    ) -> T:
        """Run ``work`` on a connection in a transaction that is rolled back. ``reader``: the
        credential asking, when a read replica may answer (it must have replayed the
        credential's own last write, and the WAL position ``replayed`` when given); without
        one, or when none may, the primary answers. ``autocommit``: each statement on its
        own, which saves the BEGIN and ROLLBACK round trips; at READ COMMITTED each statement
        sees its own snapshot either way, so only work that sets something for the
        transaction (``SET LOCAL``) needs one."""
        if reader is not None and self.replicas:
            try:
                return await self._on_replica(work, reader, replayed, autocommit)
            except _OnPrimary:
                pass
        try:
            async with self.engine.connect() as conn:
                if autocommit:
                    conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                return await work(conn)
        except DBAPIError as exc:
            raise _translate(exc) from exc
        except (OSError, ConnectionError) as exc:
            raise Unavailable("the database is unavailable; try again") from exc

    async def _on_replica(
        self,
        work: Callable[[AsyncConnection], Awaitable[T]],
        reader: str,
        replayed: int | None,
        autocommit: bool,
    ) -> T:
        try:
            async with self.engine.connect() as conn:
                primary = await replica_store.primary_position(conn, reader, replayed)
        except (DBAPIError, OSError, ConnectionError):
            raise _OnPrimary from None  # the primary read reports it
        why = "unreachable"
        for replica in self.replicas.in_turn():
            try:
                async with replica.engine.connect() as conn:
                    if autocommit:
                        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                    replay = await replica_store.replay_position(conn)
                    fresh = replica_store.freshness(primary, replay, self.replicas.max_lag)
                    if isinstance(fresh, str):
                        why = fresh
                        continue
                    conn = await conn.execution_options(
                        **{CONSISTENT_THROUGH_OPTION: fresh, WAL_POSITION_OPTION: replay.lsn}
                    )
                    answer = await work(conn)
                REPLICA_READS.labels(replica.name).inc()
                return answer
            except DBAPIError as exc:
                if _sqlstate(exc) in _RETRYABLE:
                    why = "conflict with recovery"  # a query the replay had to cancel
                    continue
                if not _lost(exc):
                    raise _translate(exc) from exc
                why = "unreachable"
                replica.set_down()
            except (OSError, ConnectionError):
                why = "unreachable"
                replica.set_down()
        PRIMARY_READS.labels(why).inc()
        raise _OnPrimary

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


async def _remember_write(conn: AsyncConnection, writer: str) -> None:
    """After a committed write: failing here must not report the write as failed (it is
    stored), so the failure is logged; the writer's next reads may then find a replica that
    has not replayed it yet."""
    try:
        async with conn.begin():
            await replica_store.remember_write(conn, writer)
    except (DBAPIError, OSError, ConnectionError):
        log.warning("could not record the WAL position of a write for read-your-writes", exc_info=True)


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
    if _lost(exc):
        return Unavailable("the database is unavailable; try again")
    return exc


def _lost(exc: DBAPIError) -> bool:
    """Whether the failure is the server's or the connection's rather than the query's."""
    if isinstance(exc, OperationalError | InterfaceError) or exc.connection_invalidated:
        return True
    state = _sqlstate(exc)
    return state is not None and (state.startswith("08") or state.startswith("57P"))
