"""The app's services, built once by the lifespan and reached by routers through one typed
dependency (instead of loose ``app.state`` attributes)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request

from lrs.config import Settings
from lrs.ops.coalesce import Coalescer
from lrs.store.database import Database

if TYPE_CHECKING:
    from lrs.api.auth import Authenticator


@dataclass(frozen=True)
class Services:
    settings: Settings
    db: Database
    authenticator: Authenticator
    coalescer: Coalescer  # group commit for single-statement writes
    more_secret: bytes  # encrypts `more` tokens; the same in every worker


async def services(request: Request) -> Services:
    """The services of the app serving this request. (Async, so FastAPI calls it inline
    rather than in its thread pool: a thread hop per request costs single-statement ingest
    about a third of its rate.)"""
    found: Services = request.app.state.services
    return found


ServicesDep = Annotated[Services, Depends(services)]
