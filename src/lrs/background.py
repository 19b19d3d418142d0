"""The installation's background worker: one elected process folds the rollup queue,
forwards statements to other LRSs and pulls from them on schedule, deletes statements past
their store's retention period once a day, and (with read replicas) writes the heartbeat
that tells replicas how fresh they are.

Every server process runs a ``Worker``; the one holding a PostgreSQL session advisory lock
(on a connection of its own) is the leader and works, the others wait to take over. When the
leader's process dies or its connection drops, PostgreSQL releases the lock and another
process takes it within ``elect_seconds``. Each unit of work is one transaction that also
takes the fold lock, so even two leaders for a moment could not fold the same row twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import asyncpg
import httpx

from lrs.config import Settings
from lrs.observability import BACKGROUND_LEADER
from lrs.ops import analytics as analytics_ops
from lrs.ops import forwarding, health, pulls, retention
from lrs.store.database import Database
from lrs.store.notifications import asyncpg_dsn

log = logging.getLogger(__name__)

LEADER_LOCK = 0x4C_52_53_4C_45_41_44  # "LRSLEAD"


class Worker:
    def __init__(
        self,
        db: Database,
        settings: Settings,
        url: str,
        *,
        idle_seconds: float = 0.2,
        elect_seconds: float = 2.0,
        retention_check_seconds: float = 60.0,
        beat_seconds: float = 1.0,
    ) -> None:
        self.db = db
        self.settings = settings
        self.dsn = asyncpg_dsn(url)
        self.idle_seconds = idle_seconds
        self.elect_seconds = elect_seconds
        self.retention_check_seconds = retention_check_seconds
        self._retention_checked = -retention_check_seconds
        self.beat_seconds = beat_seconds
        self.leading = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._set_leading(False)

    async def _run(self) -> None:
        while True:
            try:
                await self._serve_term()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background worker: lost its connection; standing for election again")
            self._set_leading(False)
            await asyncio.sleep(self.elect_seconds)

    async def _serve_term(self) -> None:
        """Stand for election; once elected, work until the connection or the process ends."""
        conn: asyncpg.Connection = await asyncpg.connect(self.dsn)
        beating: asyncio.Task[None] | None = None
        folder = analytics_ops.Folder(self.db, self.settings)
        try:
            while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", LEADER_LOCK):
                await asyncio.sleep(self.elect_seconds)
            self._set_leading(True)
            log.info("background worker: elected")
            if self.db.replicas:
                # A task of its own: a long fold must not make the replicas look behind.
                beating = asyncio.create_task(self._beat())
            key = await forwarding.sealing_key(self.db, self.settings)
            backoff = forwarding.Backoff(
                self.settings.forward_retry_seconds, self.settings.forward_retry_max_seconds
            )
            next_fold = 0.0
            async with httpx.AsyncClient(timeout=self.settings.forward_timeout_seconds) as client:
                while True:
                    folded = 0
                    if time.monotonic() >= next_fold:
                        folded = await folder.fold()
                        if folder.caught_up:
                            # Single statements arrive one queue row each: folded as they
                            # come, each fold is a few of them and a transaction's fixed
                            # cost; gathered, the machine spends a tenth less per statement.
                            next_fold = time.monotonic() + self.settings.fold_gather_seconds
                    forwarded = await self._forward(key, client, backoff)
                    pulled = await self._pull(client)
                    await self._retain()
                    if folded == 0 and forwarded == 0 and pulled == 0:
                        # Idle: make sure the lock is still ours (the connection is alive).
                        await conn.fetchval("SELECT 1")
                        await asyncio.sleep(self.idle_seconds)
        finally:
            await folder.close()
            if beating is not None:
                beating.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await beating
            with contextlib.suppress(Exception):
                await conn.close()

    async def _beat(self) -> None:
        while True:
            try:
                await health.beat(self.db)
            except Exception:
                log.exception("background worker: the replicas' heartbeat failed; trying again")
            await asyncio.sleep(self.beat_seconds)

    async def _forward(self, key: bytes, client: httpx.AsyncClient, backoff: forwarding.Backoff) -> int:
        """A failing target must not stop the fold: its errors are the rule's, not the worker's."""
        try:
            return await forwarding.forward_pending(self.db, key, client, backoff)
        except Exception:
            log.exception("background worker: forwarding failed; trying again")
            return 0

    async def _pull(self, client: httpx.AsyncClient) -> int:
        try:
            return await pulls.pull_due(self.db, self.settings, client)
        except Exception:
            log.exception("background worker: a scheduled pull failed; trying again")
            return 0

    async def _retain(self) -> None:
        """Retention is a daily job per store: looking for due stores once a minute is enough."""
        now = time.monotonic()
        if now < self._retention_checked + self.retention_check_seconds:
            return
        self._retention_checked = now
        try:
            await retention.run_due(self.db, self.settings)
        except Exception:
            log.exception("background worker: retention failed; trying again later")

    def _set_leading(self, leading: bool) -> None:
        self.leading = leading
        BACKGROUND_LEADER.set(1 if leading else 0)
