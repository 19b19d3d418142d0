"""Applying the Alembic migrations in ``migrations/``."""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

# Any fixed number: serialises migrations when several workers start at once.
_MIGRATION_LOCK = 7_413_001


def migrations_dir() -> Path:
    """``migrations/`` of the source tree, or LRS_MIGRATIONS_DIR where the package is installed
    without it (the container image)."""
    configured = os.environ.get("LRS_MIGRATIONS_DIR")
    return Path(configured) if configured else Path(__file__).resolve().parents[3] / "migrations"


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    return cfg


async def upgrade(engine: AsyncEngine) -> None:
    """Bring the database to the newest schema."""
    async with engine.begin() as conn:
        await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK})
        await conn.run_sync(_upgrade)


def _upgrade(connection: Connection) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")


async def is_current(engine: AsyncEngine) -> bool:
    """Whether the database is at the newest migration."""
    async with engine.connect() as conn:
        return await conn.run_sync(_is_current)


def _is_current(connection: Connection) -> bool:
    heads = set(ScriptDirectory.from_config(alembic_config()).get_heads())
    current = set(MigrationContext.configure(connection).get_current_heads())
    return current == heads
