"""The Alembic migrations and ``store/schema.py`` describe the same database."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from lrs.store import migrate
from lrs.store.schema import metadata


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


async def test_migrated_database_matches_schema(server):
    engine = create_async_engine(server.database_url)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(_diff) == []
        assert await migrate.is_current(engine)
        await migrate.upgrade(engine)  # running it again changes nothing
        assert await migrate.is_current(engine)
    finally:
        await engine.dispose()
