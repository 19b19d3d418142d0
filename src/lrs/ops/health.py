"""Readiness: the database answers and its schema is current."""

from __future__ import annotations

from lrs.store import migrate
from lrs.store.database import Database


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
