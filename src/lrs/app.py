"""The application factory: ``create_app(settings)``; the lifespan owns the engine."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from lrs import __version__
from lrs.admin import api as admin_api
from lrs.analytics import api as analytics_api
from lrs.analytics import regions_api
from lrs.api import about, activities, agents, cohorts, documents, errors, health, statements
from lrs.api.auth import Authenticator
from lrs.api.middleware import XAPIMiddleware
from lrs.api.responses import CONSISTENT_THROUGH
from lrs.api.services import Services
from lrs.background import Worker
from lrs.config import Settings
from lrs.dashboard import pages as dashboard
from lrs.gctuning import collect_less
from lrs.observability import ObservabilityMiddleware, configure_logging
from lrs.ops import credentials as credential_ops
from lrs.ops import statements as statement_ops
from lrs.ops.caller import Caller
from lrs.ops.coalesce import Coalescer
from lrs.store import migrate
from lrs.store.database import Database
from lrs.store.db import create_engine, create_replicas, database_url
from lrs.store.notifications import Listener
from lrs.xapi.statements import Prepared

log = logging.getLogger(__name__)

EXPOSED_HEADERS = [
    "ETag",
    "Last-Modified",
    CONSISTENT_THROUGH,
    "X-Experience-API-Version",
    "Content-Type",
]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        url = database_url(settings)
        engine = create_engine(url, settings.pool_size, sql_trace_dir=settings.sql_trace_dir)
        replicas = create_replicas(settings)
        db = Database(engine, replicas)
        await migrate.upgrade(engine)
        authenticator = Authenticator(
            db, settings.credential_cache_seconds, settings.auth_failures_per_minute
        )

        async def write(who: Caller, batch: list[Prepared]) -> list[uuid.UUID]:
            return await statement_ops.write(db, settings, who, batch)

        app.state.services = Services(
            settings=settings,
            db=db,
            authenticator=authenticator,
            coalescer=Coalescer(write),
            more_secret=settings.secret_key.encode() if settings.secret_key else await db.instance_secret(),
        )
        await credential_ops.ensure_admin(db, settings)
        worker = Worker(db, settings, url)
        if settings.background_worker:
            worker.start()
        # Credential changes reach every process at once; the cache TTL is only a backstop.
        listener = Listener(url, credential_ops.CHANNEL, authenticator.forget, authenticator.forget_all)
        listener.start()
        collect_less()
        try:
            yield
        finally:
            await worker.stop()
            await app.state.services.coalescer.close()
            await listener.stop()
            await replicas.dispose()
            await engine.dispose()

    app = FastAPI(
        title="LRS",
        version=__version__,
        summary="An xAPI 1.0.3 and 2.0 Learning Record Store",
        lifespan=lifespan,
    )
    base = settings.base_path.rstrip("/")
    app.include_router(about.router, prefix=base)
    app.include_router(statements.router, prefix=base)
    app.include_router(documents.router, prefix=base)
    app.include_router(agents.router, prefix=base)
    app.include_router(activities.router, prefix=base)
    app.include_router(admin_api.router)
    app.include_router(analytics_api.router)
    app.include_router(regions_api.router)
    app.include_router(cohorts.router)
    app.include_router(dashboard.router)
    app.mount("/dashboard/static", dashboard.static, name="dashboard-static")
    app.include_router(health.router)
    errors.install(app)
    app.add_middleware(
        XAPIMiddleware,
        base_path=base,
        max_body_bytes=settings.max_body_bytes,
        max_header_bytes=settings.max_header_bytes,
        versions=settings.xapi_versions,
    )
    app.add_middleware(
        CORSMiddleware,
        allow_origins=["*"],
        allow_methods=["*"],
        allow_headers=["*"],
        expose_headers=EXPOSED_HEADERS,
    )
    app.add_middleware(ObservabilityMiddleware)
    return app


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory``: settings from the environment, JSON logs."""
    settings = Settings()
    configure_logging(settings.log_level)
    return create_app(settings)


def openapi_document() -> str:
    """The OpenAPI document, as committed in openapi/openapi.json (stable key order)."""
    import json

    return (
        json.dumps(
            create_app(Settings(database_url="postgresql://unused")).openapi(),
            indent=2,
            sort_keys=True,
            ensure_ascii=False,
        )
        + "\n"
    )
