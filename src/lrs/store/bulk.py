"""Rows written with COPY, in the caller's transaction."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import asyncpg
from sqlalchemy.exc import DBAPIError, InterfaceError
from sqlalchemy.ext.asyncio import AsyncConnection


class RaceLost(Exception):
    """A COPY met a unique key that another transaction took after this one looked for it.
    The transaction is safe to run again: it will find that row this time."""


async def copy_rows(
    conn: AsyncConnection, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> None:
    """COPY ``rows`` into ``table`` in the caller's transaction, which must have begun (it has
    run a query). Failures arrive as SQLAlchemy's do, so that they are retried or mapped to
    xAPI errors the same way; a unique violation is a :class:`RaceLost`."""
    raw = await conn.get_raw_connection()
    try:
        await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
            table, records=rows, columns=list(columns)
        )
    except asyncpg.UniqueViolationError as exc:
        raise RaceLost(f"{table}: {exc}") from exc
    except asyncpg.PostgresError as exc:
        raise DBAPIError(f"COPY {table}", None, exc) from exc  # type: ignore[arg-type]
    except asyncpg.InterfaceError as exc:  # the connection went away under the COPY
        raise InterfaceError(f"COPY {table}", None, exc) from exc  # type: ignore[arg-type]
