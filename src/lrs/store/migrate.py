"""Applying the Alembic migrations, shipped in the package as ``lrs.migrations`` (from the
top-level ``migrations/`` of the source tree)."""

from __future__ import annotations

import importlib.util
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
    """Where the migrations are, installed or in the source tree (an editable install maps
    the package to the top-level ``migrations/``)."""
    spec = importlib.util.find_spec("lrs.migrations")
    assert spec is not None and spec.origin is not None, "the lrs.migrations package is not installed"
    return Path(spec.origin).parent


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    return cfg


async def upgrade(engine: AsyncEngine) -> None:
    """Bring the database to the newest schema."""
    async with engine.begin() as conn:
        # Migrations rewrite every store's rows once: not the queries the service runs, so
        # the SQL trace (store.db.trace_sql) leaves them out.
        await conn.execution_options(lrs_migration=True)
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
