"""Read replicas: which replica may answer a read, and how fresh its answer is.

A replica answers a read when it has replayed the reader's own last write (read-your-writes)
and is no further behind than ``max_lag``. Its answers are exact up to a consistent-through
time that it can prove: the primary's, taken as the read began, when the replica has replayed
everything the primary had written by then; otherwise the time in the last heartbeat it has
replayed (the elected worker writes one a second). Anything else reads from the primary.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from lrs.store.statements import CONSISTENT_THROUGH_SQL, consistent_through

# A replica that refused a connection is left alone this long before it is tried again.
DOWN_SECONDS = 5.0


@dataclass(frozen=True)
class Primary:
    """The primary as a read began."""

    through: datetime  # its consistent-through time
    lsn: int  # WAL written by then (bytes from 0/0)
    needed_lsn: int | None  # what a replica must have replayed: the reader's last write, say


@dataclass(frozen=True)
class Replay:
    """Where a replica stands."""

    lsn: int | None  # WAL replayed; None when the server is not a replica (not in recovery)
    through: datetime | None  # the consistent-through time of the last heartbeat replayed
    beat_age: float | None  # seconds since that heartbeat was written


async def primary_position(conn: AsyncConnection, reader: str | None, replayed: int | None = None) -> Primary:
    # The WAL position is read after the consistent-through time (the outer query's value
    # is computed once the inner aggregate is done), so every transaction that the time
    # says is over committed at or before that position.
    row = (
        await conn.execute(
            text(
                "SELECT s.through, pg_current_wal_lsn() - '0/0'::pg_lsn AS lsn,"
                " (SELECT lsn FROM recent_writes WHERE writer = :w) AS writer_lsn"
                f" FROM ({CONSISTENT_THROUGH_SQL}) AS s"
            ),
            {"w": reader},
        )
    ).one()
    needed = [int(n) for n in (row.writer_lsn, replayed) if n is not None]
    return Primary(row.through, int(row.lsn), max(needed) if needed else None)


async def replay_position(conn: AsyncConnection) -> Replay:
    row = (
        await conn.execute(
            text(
                "SELECT pg_last_wal_replay_lsn() - '0/0'::pg_lsn AS lsn, h.through,"
                " extract(epoch FROM clock_timestamp() - h.beat)::float AS age"
                " FROM (SELECT 1) AS one LEFT JOIN replica_heartbeat AS h ON h.id = 1"
            )
        )
    ).one()
    return Replay(None if row.lsn is None else int(row.lsn), row.through, row.age)


def freshness(primary: Primary, replay: Replay, max_lag: float) -> datetime | str:
    """The consistent-through time of a read on this replica, or why it must not answer: not
    a replica; not yet replayed what the read needs (the reader's own last write, or the
    position a query's first page was read at); further behind than ``max_lag``."""
    if replay.lsn is None:
        return "not a replica"
    if primary.needed_lsn is not None and replay.lsn < primary.needed_lsn:
        return "not yet replayed"
    if replay.lsn >= primary.lsn:
        return primary.through
    if replay.through is None or replay.beat_age is None or replay.beat_age > max_lag:
        return "behind"
    return replay.through


def lag_seconds(primary: Primary, replay: Replay) -> float | None:
    """How far behind the replica is: 0 when it has replayed all the primary had written,
    else the age of its last heartbeat (None: it has replayed none yet)."""
    if replay.lsn is not None and replay.lsn >= primary.lsn:
        return 0.0
    return replay.beat_age


async def remember_write(conn: AsyncConnection, writer: str) -> None:
    """Record the primary's WAL position after ``writer``'s write has committed."""
    await conn.execute(
        text(
            "INSERT INTO recent_writes (writer, lsn) VALUES (:w, pg_current_wal_lsn() - '0/0'::pg_lsn)"
            " ON CONFLICT (writer) DO UPDATE SET lsn = greatest(recent_writes.lsn, excluded.lsn)"
        ),
        {"w": writer},
    )


async def beat(conn: AsyncConnection) -> None:
    """Write the heartbeat: the primary's consistent-through time, committed after it was
    taken, so a replica that has replayed the row has every statement stored before it."""
    await conn.execute(
        text(
            "INSERT INTO replica_heartbeat (id, through, beat) VALUES (1, :t, clock_timestamp())"
            " ON CONFLICT (id) DO UPDATE SET through = excluded.through, beat = excluded.beat"
        ),
        {"t": await consistent_through(conn)},
    )


@dataclass
class Replica:
    name: str  # host:port/database, for health and metrics (never the password)
    engine: AsyncEngine
    down_until: float = 0.0

    def set_down(self) -> None:
        self.down_until = time.monotonic() + DOWN_SECONDS


class Replicas:
    """The read replicas of one primary, asked in turn."""

    def __init__(self, engines: Sequence[tuple[str, AsyncEngine]], max_lag: float) -> None:
        self.all = [Replica(name_of(url), engine) for url, engine in engines]
        self.max_lag = max_lag
        self._turn = 0

    def __bool__(self) -> bool:
        return bool(self.all)

    def in_turn(self) -> list[Replica]:
        """The replicas not known to be down, the next one in turn first."""
        now = time.monotonic()
        self._turn = (self._turn + 1) % max(len(self.all), 1)
        ordered = self.all[self._turn :] + self.all[: self._turn]
        return [r for r in ordered if r.down_until <= now]

    async def dispose(self) -> None:
        for replica in self.all:
            await replica.engine.dispose()


def name_of(url: str) -> str:
    parsed = make_url(url)
    return f"{parsed.host or 'localhost'}:{parsed.port or 5432}/{parsed.database or ''}"


@dataclass(frozen=True)
class State:
    """A replica as health checks and metrics show it."""

    name: str
    state: str  # "ok", "behind", "unreachable" or "not a replica"
    lag_seconds: float | None  # None: unknown (unreachable, or no heartbeat replayed yet)


async def states(primary: AsyncEngine, replicas: Replicas) -> list[State]:
    """Ask every replica where it stands against the primary now."""
    if not replicas:
        return []
    async with primary.connect() as conn:
        position = await primary_position(conn, None)
    found = []
    for replica in replicas.all:
        try:
            async with replica.engine.connect() as conn:
                replay = await replay_position(conn)
        except Exception:  # a replica that cannot be asked is reported, whatever the reason
            found.append(State(replica.name, "unreachable", None))
            continue
        fresh = freshness(position, replay, replicas.max_lag)
        state = fresh if isinstance(fresh, str) else "ok"
        found.append(State(replica.name, state, lag_seconds(position, replay)))
    return found
