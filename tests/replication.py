"""A PostgreSQL primary with a streaming replica, made for a test with the embedded server's
binaries: ``initdb`` for the primary, ``pg_basebackup -R`` for the replica, each on a port of
its own on 127.0.0.1. Run as the pgserver system user when the tests run as root (PostgreSQL
refuses to run as root), as the embedded server does."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from lrs.embedded import pgserver
from tests.harness import free_port


@dataclass
class Cluster:
    pgdata: Path
    port: int

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"


class StreamingPair:
    """A primary and its hot standby; the replica can be paused, stopped and started."""

    def __init__(self, root: Path) -> None:
        module = pgserver()
        server = module.PostgresServer(root / "unused", cleanup_mode=None)  # binaries and user
        self._pgexec = module.pgexec
        self._bin = server.bin_path
        self.owner = server.system_user
        self.primary = Cluster(root / "primary", free_port())
        self.replica = Cluster(root / "replica", free_port())

    def _run(self, command: str, *args: str) -> str:
        output: str = self._pgexec(command, args, bin_path=self._bin, user=self.owner, timeout=60)
        return output

    def make(self) -> None:
        self._run(
            "initdb", "--auth=trust", "--encoding=utf8", "-U", "postgres", "-D", str(self.primary.pgdata)
        )
        self.start(self.primary)
        self._run(
            "pg_basebackup",
            *("-h", "127.0.0.1", "-p", str(self.primary.port), "-U", "postgres"),
            *("-D", str(self.replica.pgdata), "-R", "-X", "stream", "-c", "fast"),
        )
        self.start(self.replica)

    def start(self, cluster: Cluster) -> None:
        options = f"-p {cluster.port} -h 127.0.0.1 -k {cluster.pgdata}"
        self._run(
            "pg_ctl",
            "-w",
            "-D",
            str(cluster.pgdata),
            "-o",
            options,
            "-l",
            str(cluster.pgdata / "log"),
            "start",
        )
        wait_until_accepting(cluster.url())

    def stop(self, cluster: Cluster) -> None:
        if (cluster.pgdata / "postmaster.pid").exists():
            self._run("pg_ctl", "-w", "-D", str(cluster.pgdata), "-m", "fast", "stop")

    def execute(self, cluster: Cluster, sql: str, database: str = "postgres") -> object:
        """One statement, in autocommit; its first value."""

        async def run() -> object:
            engine = create_async_engine(cluster.url(database), isolation_level="AUTOCOMMIT")
            try:
                async with engine.connect() as conn:
                    result = await conn.execute(text(sql))
                    return result.scalar() if result.returns_rows else None
            finally:
                await engine.dispose()

        return asyncio.run(run())

    def wait_for_replay(self, database: str = "postgres", timeout: float = 30) -> None:
        """Until the replica has replayed everything the primary has written so far."""
        target = self.execute(self.primary, "SELECT pg_current_wal_lsn() - '0/0'::pg_lsn")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done = self.execute(self.replica, "SELECT pg_last_wal_replay_lsn() - '0/0'::pg_lsn", database)
            if done is not None and done >= target:  # type: ignore[operator]
                return
            time.sleep(0.05)
        raise AssertionError(f"the replica did not replay to {target} in {timeout} s")


def wait_until_accepting(url: str, timeout: float = 30) -> None:
    async def once() -> None:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        finally:
            await engine.dispose()

    deadline = time.monotonic() + timeout
    while True:
        try:
            asyncio.run(once())
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@contextmanager
def streaming_pair() -> Iterator[StreamingPair]:
    """A primary and a replica for the block; both stopped and deleted afterwards."""
    root = Path(tempfile.mkdtemp(prefix="lrs-replication-"))
    pair = StreamingPair(root)
    if pair.owner is not None:  # the clusters' owner must be able to write here
        owner = pwd.getpwnam(pair.owner)
        os.chown(root, owner.pw_uid, owner.pw_gid)
    try:
        pair.make()
        yield pair
    finally:
        for cluster in (pair.replica, pair.primary):
            with suppress(Exception):
                pair.stop(cluster)
        shutil.rmtree(root, ignore_errors=True)
