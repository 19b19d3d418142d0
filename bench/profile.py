"""Where the time goes while the benchmark loads the LRS: CPU seconds of the LRS workers, of
PostgreSQL and of the load generator over a window, and the workers' hottest functions as
py-spy samples them (own time, and time inside a few functions that name a stage of a write).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Self

import psutil

# Functions whose time (with what they call) is a stage of ingest worth reporting: a sample
# counts for a stage when a frame of its stack starts with one of these.
STAGES = {
    "parse JSON": ("loads (",),
    "validate (prepare)": ("prepare (",),
    "store.statements.insert": ("insert (",),
    # the fold's transaction, and the batch computed ahead in a thread
    "rollup fold (worker)": ("_fold (", "_parsed_added ("),
    "forwarding enqueue": ("enqueue (",),
}


def postgres_processes() -> list[psutil.Process]:
    """This machine's PostgreSQL processes: the server and its backends."""
    return [p for p in psutil.process_iter(["name"]) if p.info["name"] in ("postgres", "postmaster")]


def _processes(server: subprocess.Popen[bytes]) -> dict[str, list[psutil.Process]]:
    root = psutil.Process(server.pid)
    workers = [c for c in root.children(recursive=True) if "spawn_main" in " ".join(c.cmdline())] or [root]
    return {"lrs_workers": workers, "postgresql": postgres_processes(), "load_generator": [psutil.Process()]}


def _cpu(groups: dict[str, list[psutil.Process]]) -> dict[str, float]:
    out = {}
    for name, procs in groups.items():
        total = 0.0
        for p in procs:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.Error:
                continue
        out[name] = total
    return out


def machine_cpu_seconds() -> float:
    """CPU seconds the whole machine has been busy since boot, all cores (``/proc/stat``;
    idle, I/O wait and time stolen by the host left out). Unlike a process list, it keeps
    the time of PostgreSQL backends that exit meanwhile."""
    return _machine_times()[0]


def processes_cpu_seconds(pids: Iterable[int]) -> dict[int, float]:
    """CPU seconds each of these processes has used; those gone are left out."""
    out = {}
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.NoSuchProcess:
            continue
        out[pid] = times.user + times.system
    return out


def workers_cpu_seconds(server: subprocess.Popen[bytes]) -> float:
    """CPU seconds the LRS server's worker processes have used."""
    return _cpu({"lrs": _processes(server)["lrs_workers"]})["lrs"]


async def profile(server: subprocess.Popen[bytes], seconds: float) -> dict[str, Any]:
    """Sample the running server for ``seconds`` (the load is driven by the caller meanwhile)."""
    groups = _processes(server)
    before = _cpu(groups)
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    files, spies = [], []
    for worker in groups["lrs_workers"]:
        out = tempfile.mktemp(prefix="lrs-pyspy-", suffix=".txt")
        files.append(out)
        spies.append(
            subprocess.Popen(
                [
                    spy,
                    "record",
                    "--format",
                    "raw",
                    "--nonblocking",
                    "-r",
                    "50",
                    "-d",
                    str(int(seconds)),
                    "-p",
                    str(worker.pid),
                    "-o",
                    out,
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    await asyncio.sleep(seconds)
    for s in spies:
        await asyncio.to_thread(s.wait, 60)
    after = _cpu(groups)
    used = {k: round(after[k] - before[k], 1) for k in after}
    total = sum(used.values()) or 1.0
    return {
        "window_s": seconds,
        "cpu_s": used,
        "cpu_share": {k: round(v / total, 3) for k, v in used.items()},
        **_hot(files),
    }


def _hot(files: list[str]) -> dict[str, Any]:
    own: Counter[str] = Counter()
    stages: Counter[str] = Counter()
    samples = 0
    for path in files:
        try:
            lines = Path(path).read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            n = int(count)
            frames = stack.split(";")
            samples += n
            own[_short(frames[-1])] += n
            for stage, starts in STAGES.items():
                if any(f.startswith(starts) for f in frames):
                    stages[stage] += n
        Path(path).unlink(missing_ok=True)
    if not samples:
        return {"samples": 0}
    return {
        "samples": samples,
        "stage_share": {k: round(stages[k] / samples, 3) for k in STAGES},
        "top_own": {k: round(v / samples, 3) for k, v in own.most_common(12)},
    }


def _short(frame: str) -> str:
    """``func (path/to/module.py:12)`` as ``func (module.py)``."""
    name, _, where = frame.partition(" (")
    file = where.rsplit(":", 1)[0].rsplit("/", 1)[-1]
    return f"{name} ({file})" if file else name


def _machine_times() -> tuple[float, float]:
    """Busy and I/O-wait seconds of the whole machine since boot (``/proc/stat``)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]
    user, nice, system, _idle, iowait, irq, softirq = map(int, fields)
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / tick, iowait / tick


class Sampler:
    """Samples something in the background while a phase runs (``async with``): ``_sample``
    loops until the block ends; ``_open`` and ``_close`` come before and after it."""

    _task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        await self._open()
        self._task = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self._close()

    async def _open(self) -> None:
        pass

    async def _close(self) -> None:
        pass

    async def _sample(self) -> None:
        raise NotImplementedError


class DatabaseSampler(Sampler):
    """What the database's own backends wait on while a phase runs, sampled from
    ``pg_stat_activity`` ten times a second: the share of active-backend samples per wait
    (``CPU`` when none) and per statement, the share of blocks read from outside
    PostgreSQL's cache, and the machine's I/O wait against its busy time. It tells a phase
    slowed by reading from disk from one slowed by CPU or by locks, which py-spy's view of
    the LRS workers cannot."""

    ACTIVE = (
        "SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU'), left(regexp_replace(query,"
        " '\\s+', ' ', 'g'), 70) FROM pg_stat_activity WHERE datname = current_database()"
        " AND state = 'active' AND pid <> pg_backend_pid()"
    )
    BLOCKS = "SELECT blks_read, blks_hit FROM pg_stat_database WHERE datname = current_database()"

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.waits: Counter[str] = Counter()
        self.queries: Counter[str] = Counter()
        self.samples = 0
        self._start: tuple[Any, ...] = ()
        self._end: tuple[Any, ...] = ()

    async def _open(self) -> None:
        import asyncpg

        self._conn = await asyncpg.connect(self.dsn)
        self._start = (*(await self._conn.fetchrow(self.BLOCKS)), *_machine_times())

    async def _close(self) -> None:
        self._end = (*(await self._conn.fetchrow(self.BLOCKS)), *_machine_times())
        await self._conn.close()

    async def _sample(self) -> None:
        while True:
            rows = await self._conn.fetch(self.ACTIVE)
            self.samples += 1
            for wait, query in rows:
                self.waits[wait] += 1
                self.queries[query] += 1
            await asyncio.sleep(0.1)

    def summary(self) -> dict[str, Any]:
        read = self._end[0] - self._start[0]
        hit = self._end[1] - self._start[1]
        busy = self._end[2] - self._start[2]
        iowait = self._end[3] - self._start[3]
        active = sum(self.waits.values()) or 1
        return {
            "samples": self.samples,
            "active_backends_mean": round(active / max(self.samples, 1), 2),
            "wait_share": {k: round(v / active, 3) for k, v in self.waits.most_common(8)},
            "query_share": {k: round(v / active, 3) for k, v in self.queries.most_common(6)},
            "blocks_read": read,
            "blocks_read_share": round(read / max(read + hit, 1), 4),
            "machine_iowait_vs_busy": round(iowait / max(busy, 1e-9), 3),
        }
