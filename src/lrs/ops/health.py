"""Readiness (the database answers and its schema is current), and the read replicas: how
far behind each is, and the heartbeat that tells them."""

from __future__ import annotations

from lrs.store import migrate
from lrs.store import replicas as replica_store
from lrs.store.database import Database
from lrs.store.replicas import State


async def readiness(db: Database) -> dict[str, str]:
    """One entry per check: "ok", or what is wrong."""
    checks: dict[str, str] = {}
    try:
        await db.ping()
        checks["database"] = "ok"
        checks["migrations"] = "ok" if await migrate.is_current(db.engine) else "behind"
    except Exception as exc:
        checks.setdefault("database", f"unreachable ({exc.__class__.__name__})")
    return checks


async def replicas(db: Database) -> list[State]:
    """Each configured read replica: reachable, within the allowed lag, and its lag."""
    return await replica_store.states(db.engine, db.replicas)


async def beat(db: Database) -> None:
    """Write the replicas' heartbeat (the elected worker does, once a second)."""
    await db.write(replica_store.beat)
