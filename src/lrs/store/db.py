"""The database engine: one per process, created by the app's lifespan or the CLI."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from lrs.config import Settings


def database_url(settings: Settings) -> str:
    """The URL to connect to: the configured one, else the embedded server's."""
    if settings.database_url:
        return as_asyncpg(settings.database_url)
    from lrs.embedded import start_embedded

    return start_embedded(settings.data_dir)


def as_asyncpg(url: str) -> str:
    for prefix in ("postgresql://", "postgres://", "postgresql+psycopg://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    return url


def create_engine(url: str, pool_size: int = 10) -> AsyncEngine:
    return create_async_engine(
        as_asyncpg(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_recycle=3600,
        # PostgreSQL compiles a query when its estimated cost is high, and analytics over
        # cohorts are estimated high (recursive CTEs) while running in milliseconds: the
        # compilation alone costs 50-100 ms per query. Nothing here runs long enough to win.
        connect_args={"server_settings": {"jit": "off"}},
    )
