"""Group commit: single-statement writes that arrive together share one transaction.

A commit costs a WAL flush, so one transaction per statement caps ingest long before the
CPU does. Requests from the same credential queue here while a write for that credential is
in flight; when it finishes, everything queued is written in the next transaction. With no
load there is no waiting at all: a lone request is written at once.

Each request keeps its own outcome. If a combined write fails with an xAPI error (say one
request's statement conflicts with a stored one), every request in it is written again on
its own, so only the faulty one fails.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

from lrs.ops.caller import Caller
from lrs.xapi.errors import Unavailable, XAPIError
from lrs.xapi.statements import Prepared

Write = Callable[[Caller, list[Prepared]], Awaitable[list[uuid.UUID]]]
_Item = tuple[list[Prepared], "asyncio.Future[list[uuid.UUID]]"]


class Coalescer:
    def __init__(self, write: Write, max_statements: int = 500) -> None:
        self._write = write
        self._max = max_statements
        self._queues: dict[str, list[_Item]] = {}
        self._busy: set[str] = set()
        self._closed = False
        # The event loop keeps only weak references to tasks; these keep the drains alive.
        self._tasks: set[asyncio.Task[None]] = set()

    async def write(self, who: Caller, batch: list[Prepared]) -> list[uuid.UUID]:
        if self._closed:
            raise Unavailable("the server is shutting down; send the statement again")
        future: asyncio.Future[list[uuid.UUID]] = asyncio.get_running_loop().create_future()
        self._queues.setdefault(who.key, []).append((batch, future))
        if who.key not in self._busy:
            self._start(who)
        return await future

    async def close(self) -> None:
        """Refuse new writes and wait until every queued one is written (at shutdown, before
        the database pool goes away)."""
        self._closed = True
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _start(self, who: Caller) -> None:
        self._busy.add(who.key)
        task = asyncio.create_task(self._drain(who))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain(self, who: Caller) -> None:
        try:
            while self._queues.get(who.key):
                items = self._take(who.key)
                await self._write_together(who, items)
        finally:
            self._busy.discard(who.key)
            if self._queues.get(who.key):  # arrived after the loop looked
                self._start(who)

    def _take(self, key: str) -> list[_Item]:
        queue = self._queues[key]
        taken: list[_Item] = []
        count = 0
        while queue and (not taken or count + len(queue[0][0]) <= self._max):
            item = queue.pop(0)
            taken.append(item)
            count += len(item[0])
        if not queue:
            del self._queues[key]
        return taken

    async def _write_together(self, who: Caller, items: list[_Item]) -> None:
        if len(items) == 1:
            await self._write_alone(who, items[0])
            return
        combined = [p for batch, _ in items for p in batch]
        try:
            ids = await self._write(who, combined)
        except XAPIError:
            for item in items:
                await self._write_alone(who, item)
            return
        except Exception as exc:
            for _, future in items:
                if not future.done():
                    future.set_exception(exc)
            return
        start = 0
        for batch, future in items:
            if not future.done():
                future.set_result(ids[start : start + len(batch)])
            start += len(batch)

    async def _write_alone(self, who: Caller, item: _Item) -> None:
        batch, future = item
        try:
            result = await self._write(who, batch)
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
            return
        if not future.done():
            future.set_result(result)
