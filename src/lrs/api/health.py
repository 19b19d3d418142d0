"""Health and metrics: for load balancers, orchestrators and Prometheus."""

from __future__ import annotations

import hmac
import math
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from lrs.api.errors import error_response
from lrs.api.services import ServicesDep
from lrs.observability import (
    FORWARD_DEAD,
    FORWARD_FAILED,
    FORWARD_LAG,
    FORWARD_PENDING,
    FORWARD_SENT,
    POOL_IN_USE,
    POOL_SIZE,
    REPLICA_LAG,
    REPLICA_USABLE,
    RETENTION_DELETED,
    RETENTION_LAST_RUN,
    RETENTION_OVERDUE,
    ROLLUP_LAG,
    ROLLUP_PENDING,
    metrics_body,
)
from lrs.ops import analytics as analytics_ops
from lrs.ops import forwarding, health, retention

router = APIRouter(tags=["Operations"])


@router.get("/health/live", summary="The process is up")
async def live() -> dict[str, str]:
    return {"status": "live"}


@router.get(
    "/health/ready",
    summary="The database is reachable and its schema current",
    responses={503: {"description": "Not ready: the reason is in `checks`"}},
)
async def ready(app: ServicesDep) -> JSONResponse:
    checks = await health.readiness(app.db)
    ok = all(v == "ok" for v in checks.values()) and len(checks) == 2
    body: dict[str, object] = {"status": "ready" if ok else "not ready", "checks": checks}
    if ok:
        # Details, not conditions: a failing forwarding target does not make this LRS unready.
        body["forwarding"] = [
            {
                "store": store,
                "rule": rule.name,
                "pending": rule.pending,
                "lag_seconds": _lag(rule.oldest, now),
                "sent": rule.sent,
                "failed": rule.failed,
                "dead": rule.dead,
                "last_error": rule.last_error,
            }
            for store, rule in await forwarding.status(app.db)
            for now in [datetime.now(UTC)]
        ]
        if app.db.replicas:
            # Also a detail: reads fall back to the primary while no replica is usable.
            found = await health.replicas(app.db)
            body["replicas"] = [
                {"replica": r.name, "state": r.state, "lag_seconds": r.lag_seconds} for r in found
            ]
            body["reads_from"] = "replicas" if any(r.state == "ok" for r in found) else "primary"
    return JSONResponse(body, status_code=200 if ok else 503)


def _lag(oldest: datetime | None, now: datetime) -> float:
    return max((now - oldest).total_seconds(), 0.0) if oldest else 0.0


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request, app: ServicesDep) -> Response:
    token = app.settings.metrics_token
    if token is not None:
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            response = error_response(401, "/metrics needs 'Authorization: Bearer <LRS_METRICS_TOKEN>'")
            response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    backlog = await analytics_ops.backlog(app.db)
    ROLLUP_PENDING.set(backlog.statements)
    ROLLUP_LAG.set((backlog.now - backlog.oldest).total_seconds() if backlog.oldest else 0.0)
    now = datetime.now(UTC)
    for store, rule in await forwarding.status(app.db):
        FORWARD_PENDING.labels(store, rule.name).set(rule.pending)
        FORWARD_LAG.labels(store, rule.name).set(_lag(rule.oldest, now))
        FORWARD_SENT.labels(store, rule.name).set(rule.sent)
        FORWARD_FAILED.labels(store, rule.name).set(rule.failed)
        FORWARD_DEAD.labels(store, rule.name).set(rule.dead)
    for kept in await retention.status(app.db):
        RETENTION_OVERDUE.labels(kept.store).set(kept.overdue_seconds)
        RETENTION_LAST_RUN.labels(kept.store).set(kept.last_run.timestamp() if kept.last_run else 0)
        RETENTION_DELETED.labels(kept.store).set(kept.deleted)
    for replica in await health.replicas(app.db):
        REPLICA_LAG.labels(replica.name).set(math.nan if replica.lag_seconds is None else replica.lag_seconds)
        REPLICA_USABLE.labels(replica.name).set(1 if replica.state == "ok" else 0)
    pool = app.db.engine.pool
    POOL_IN_USE.set(pool.checkedout())  # type: ignore[attr-defined]
    POOL_SIZE.set(pool.size())  # type: ignore[attr-defined]
    body, content_type = metrics_body()
    return Response(body, media_type=content_type)
