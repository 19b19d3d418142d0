"""The database engine: one per process, created by the app's lifespan or the CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from lrs.config import Settings
from lrs.store.replicas import Replicas


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


def create_engine(
    url: str, pool_size: int = 10, connect_timeout: float = 60.0, sql_trace_dir: Path | None = None
) -> AsyncEngine:
    engine = create_async_engine(
        as_asyncpg(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_recycle=3600,
        # PostgreSQL compiles a query when its estimated cost is high, and analytics over
        # cohorts are estimated high (recursive CTEs) while running in milliseconds: the
        # compilation alone costs 50-100 ms per query. Nothing here runs long enough to win.
        connect_args={"server_settings": {"jit": "off"}, "timeout": connect_timeout},
    )
    event.listen(engine.sync_engine, "checkout", _ping)
    if sql_trace_dir is not None:
        trace_sql(engine, sql_trace_dir)
    return engine


def _ping(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """Check a pooled connection as it is taken, in one round trip. SQLAlchemy's own
    ``pool_pre_ping`` wraps its ping in a transaction for PgBouncer's transaction mode (three
    round trips), which this LRS does not run behind: it holds session advisory locks."""
    try:
        dbapi_connection.run_async(lambda c: c.execute("SELECT 1"))
    except Exception as exc:
        raise DisconnectionError("the connection was lost") from exc


def trace_sql(engine: AsyncEngine, directory: Path) -> None:
    """Append every distinct SQL text the engine runs to ``<directory>/<pid>.jsonl``, one JSON
    string per line. One file per process, so that workers never interleave their lines."""
    seen: set[str] = set()
    path = directory / f"{os.getpid()}.jsonl"

    def record(conn: Connection, cursor: Any, statement: str, *args: Any) -> None:
        if statement not in seen and not conn.get_execution_options().get("lrs_migration"):
            seen.add(statement)
            with path.open("a") as out:
                out.write(json.dumps(statement) + "\n")

    event.listen(engine.sync_engine, "before_cursor_execute", record)


def create_replicas(settings: Settings) -> Replicas:
    """The configured read replicas. A replica that does not answer within two seconds is
    skipped for a while rather than making readers wait for it."""
    engines = [
        (
            url,
            create_engine(url, settings.pool_size, connect_timeout=2.0, sql_trace_dir=settings.sql_trace_dir),
        )
        for url in settings.read_database_url
    ]
    return Replicas(engines, settings.replica_max_lag_seconds)
