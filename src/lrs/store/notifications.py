"""Listening on a PostgreSQL channel, reconnecting by itself when the connection drops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import asyncpg
from sqlalchemy import make_url

log = logging.getLogger(__name__)


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    return make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)


class Listener:
    """Calls ``on_message(payload)`` for each notification, and ``on_gap()`` whenever
    messages may have been missed (the connection was down)."""

    def __init__(
        self, url: str, channel: str, on_message: Callable[[str], None], on_gap: Callable[[], None]
    ) -> None:
        self.dsn = asyncpg_dsn(url)
        self.channel = channel
        self.on_message = on_message
        self.on_gap = on_gap
        self._task: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            conn: Any = None
            try:
                conn = await asyncpg.connect(self.dsn)
                self._lost.clear()
                await conn.add_listener(self.channel, self._message)
                conn.add_termination_listener(lambda _conn: self._lost.set())
                self.on_gap()  # anything sent while we were not listening is unknown
                await self._lost.wait()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("listening on %s failed (%s); retrying", self.channel, exc)
            finally:
                if conn is not None and not conn.is_closed():
                    await conn.close()
            self.on_gap()
            await asyncio.sleep(1)

    def _message(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self.on_message(payload)
