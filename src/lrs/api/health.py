"""Health and metrics: for load balancers, orchestrators and Prometheus."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from lrs.observability import POOL_IN_USE, POOL_SIZE, metrics_body
from lrs.store import migrate
from lrs.store.database import Database

router = APIRouter(tags=["Operations"])


@router.get("/health/live", summary="The process is up")
async def live() -> dict[str, str]:
    return {"status": "live"}


@router.get(
    "/health/ready",
    summary="The database is reachable and its schema current",
    responses={503: {"description": "Not ready: the reason is in `checks`"}},
)
async def ready(request: Request) -> JSONResponse:
    db: Database = request.app.state.db
    checks: dict[str, str] = {}
    try:

        async def ping(conn: AsyncConnection) -> None:
            await conn.execute(text("SELECT 1"))

        await db.read(ping)
        checks["database"] = "ok"
        checks["migrations"] = "ok" if await migrate.is_current(db.engine) else "behind"
    except Exception as exc:
        checks.setdefault("database", f"unreachable ({exc.__class__.__name__})")
    ok = all(v == "ok" for v in checks.values()) and len(checks) == 2
    return JSONResponse(
        {"status": "ready" if ok else "not ready", "checks": checks}, status_code=200 if ok else 503
    )


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    db: Database = request.app.state.db
    pool = db.engine.pool
    POOL_IN_USE.set(pool.checkedout())  # type: ignore[attr-defined]
    POOL_SIZE.set(pool.size())  # type: ignore[attr-defined]
    body, content_type = metrics_body()
    return Response(body, media_type=content_type)
