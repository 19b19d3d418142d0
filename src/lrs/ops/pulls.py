"""Pulling statements from another LRS through its own xAPI API.

A source names the other LRS (its xAPI base URL, credentials, version) and keeps a
checkpoint: the ``stored`` of the last statement taken. A pull asks for
``GET /statements?since=<checkpoint>&ascending=true&attachments=true`` and follows the
``more`` links; each page is validated as ``POST /statements`` would validate it and stored
in one transaction (with the attachments it carried), then the checkpoint moves. A
statement already here with the same id and content is a no-op, so a pull that was
interrupted starts again from its checkpoint and loses nothing. A scheduled source is
pulled by the elected background worker every ``every_seconds``.

Statements keep their ``authority`` (who asserted them at the source) and get a ``stored``
of their own (they arrive here now). The source's errors and rate limits are waited out:
429 and 503 for their ``Retry-After``, other failures with exponential backoff.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Literal
from urllib.parse import urlencode, urljoin

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.ext.asyncio import AsyncConnection

from lrs.config import Settings
from lrs.ops import statements as statement_ops
from lrs.ops.caller import Caller
from lrs.ops.forwarding import RuleSpec, seal, sealing_key, unseal
from lrs.ops.statements import Content
from lrs.ops.stores import store_named
from lrs.ops.transfer import importer
from lrs.store import audit
from lrs.store import pulls as pull_store
from lrs.store import stores as store_store
from lrs.store.database import Database
from lrs.store.pulls import Source
from lrs.xapi.attachments import referenced_hashes
from lrs.xapi.errors import NotFound, XAPIError
from lrs.xapi.multipart import read_multipart
from lrs.xapi.statements import Prepared, prepare
from lrs.xapi.timestamps import parse_timestamp
from lrs.xapi.versions import Version

RETRIES = 6  # attempts at one page before the pull stops (and keeps its checkpoint)
WORKER = "worker"  # the actor of scheduled pulls in the audit trail (only when they took something)


class SourceSpec(BaseModel):
    """Another LRS to pull from; the secret is kept encrypted and never shown again."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
    endpoint: str = Field(description="The other LRS's xAPI base URL, e.g. https://vendor.example/xapi")
    version: Literal["1.0.3", "2.0.0"] = "2.0.0"
    key: str = Field(min_length=1, max_length=500)
    secret: str = Field(min_length=1, max_length=500)
    since: datetime | None = Field(default=None, description="Only statements stored after this time")
    every_seconds: int | None = Field(
        default=None, ge=1, description="Pull again this often (the background worker); none: only when asked"
    )

    @field_validator("endpoint")
    @classmethod
    def http_url(cls, value: str) -> str:
        return RuleSpec.http_url(value)


class SourceOut(BaseModel):
    name: str
    endpoint: str
    version: str
    key: str
    checkpoint: datetime | None = Field(description="The `stored` of the last statement taken")
    every_seconds: int | None
    last_run: datetime | None
    last_error: str | None
    pulled: int
    created: datetime


@dataclass
class PullReport:
    statements: int = 0
    pages: int = 0
    seconds: float = 0.0
    rejected: list[str] = field(default_factory=list)  # statements the source holds that fail validation
    complete: bool = False  # reached the end (no `more`)
    error: str | None = None

    @property
    def rate(self) -> float:
        return self.statements / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "statements": self.statements,
            "pages": self.pages,
            "seconds": round(self.seconds, 3),
            "statements_per_second": round(self.rate, 1),
            "rejected": self.rejected,
            "complete": self.complete,
            "error": self.error,
        }


def _out(source: Source, key: bytes) -> SourceOut:
    return SourceOut(
        name=source.name,
        endpoint=source.endpoint,
        version=source.version,
        key=orjson.loads(unseal(key, source.credentials))["key"],
        checkpoint=source.checkpoint,
        every_seconds=source.every_seconds,
        last_run=source.last_run,
        last_error=source.last_error,
        pulled=source.pulled,
        created=source.created,
    )


async def _source(conn: AsyncConnection, store_name: str, name: str) -> Source:
    store = await store_named(conn, store_name)
    source = await pull_store.named(conn, store.id, name)
    if source is None:
        raise NotFound(f"store {store_name!r} has no pull source named {name!r}")
    return source


async def save_source(
    db: Database, settings: Settings, actor: str, store_name: str, spec: SourceSpec
) -> SourceOut:
    """Create a source, or change the one of that name (its checkpoint stays)."""
    key = await sealing_key(db, settings)

    async def work(conn: AsyncConnection) -> SourceOut:
        store = await store_named(conn, store_name)
        values = {
            "name": spec.name,
            "endpoint": spec.endpoint,
            "version": spec.version,
            "credentials": seal(key, orjson.dumps({"key": spec.key, "secret": spec.secret})),
            "checkpoint": spec.since,
            "every_seconds": spec.every_seconds,
        }
        source = await pull_store.save(conn, store.id, values)
        shown = spec.model_dump(mode="json", exclude={"secret"})
        await audit.record(conn, actor, "pull.save", store.name, spec.name, shown)
        return _out(source, key)

    return await db.write(work)


async def list_sources(db: Database, settings: Settings, store_name: str) -> list[SourceOut]:
    key = await sealing_key(db, settings)

    async def work(conn: AsyncConnection) -> list[SourceOut]:
        store = await store_named(conn, store_name)
        return [_out(s, key) for s in await pull_store.of_store(conn, store.id)]

    return await db.read(work)


async def delete_source(db: Database, actor: str, store_name: str, name: str) -> None:
    async def work(conn: AsyncConnection) -> None:
        source = await _source(conn, store_name, name)
        await pull_store.delete(conn, source.id)
        await audit.record(conn, actor, "pull.delete", store_name, name, {"pulled": source.pulled})

    await db.write(work)


async def run(
    db: Database,
    settings: Settings,
    actor: str,
    store_name: str,
    name: str,
    *,
    client: httpx.AsyncClient | None = None,
    page_size: int = 500,
    max_pages: int | None = None,
    progress: Callable[[PullReport], None] | None = None,
) -> PullReport:
    """Pull from the source until the other LRS has no more (or ``max_pages`` are done)."""
    key = await sealing_key(db, settings)
    source = await db.read(lambda c: _source(c, store_name, name))
    store = await db.read(lambda c: store_named(c, store_name))
    target = orjson.loads(unseal(key, source.credentials))
    who = importer(store, f"pull:{name}", None, settings.authority_home_page)
    report = PullReport()
    started = time.monotonic()
    params: dict[str, Any] = {"ascending": "true", "limit": page_size, "attachments": "true"}
    if source.checkpoint is not None:
        # `since` is exclusive and many statements can share one `stored`: step back a
        # microsecond, so the rest of a group cut by an interruption comes again (the ones
        # already here are no-ops).
        params["since"] = (source.checkpoint - timedelta(microseconds=1)).isoformat()
    url: str | None = f"{source.endpoint}/statements?{urlencode(params)}"
    own_client = client is None
    http = client or httpx.AsyncClient(timeout=settings.forward_timeout_seconds)
    try:
        while url is not None and (max_pages is None or report.pages < max_pages):
            statements, contents, more = await _page(http, url, source, target, settings)
            stamps = [parse_timestamp(str(s.get("stored", ""))) for s in statements]
            latest = max((s for s in stamps if s is not None), default=None)
            taken = _validated(statements, who, report)
            if taken:
                hashes = {h for p in taken for h in referenced_hashes(p.statement)}
                await statement_ops.write(db, settings, who, taken, [c for c in contents if c.sha2 in hashes])
            for c in contents:
                c.file.close()
            if latest is not None:
                moved = partial(pull_store.advanced, source_id=source.id, checkpoint=latest, taken=len(taken))
                await db.write(moved)
            report.statements += len(taken)
            report.pages += 1
            report.seconds = time.monotonic() - started
            if progress is not None:
                progress(report)
            url = urljoin(source.endpoint, more) if more else None
        report.complete = url is None
    except (_Failed, XAPIError) as exc:
        report.error = exc.message if isinstance(exc, XAPIError) else str(exc)
    finally:
        if own_client:
            await http.aclose()
    report.seconds = time.monotonic() - started
    if report.complete or report.error:
        await db.write(lambda c: pull_store.finished(c, source.id, report.error))

    if report.statements or report.error or actor != WORKER:

        async def note(conn: AsyncConnection) -> None:
            await audit.record(conn, actor, "pull.run", store.name, name, report.as_dict())

        await db.write(note)
    return report


class _Failed(Exception):
    """The other LRS kept failing, or refused (a 4xx other than 429)."""


async def _page(
    http: httpx.AsyncClient, url: str, source: Source, target: dict[str, str], settings: Settings
) -> tuple[list[dict[str, Any]], list[Content], str | None]:
    """One page of the other LRS's statements, with the attachment parts it carried."""
    headers = {"X-Experience-API-Version": source.version}
    auth = (target["key"], target["secret"])
    for attempt in range(RETRIES):
        wait = min(0.5 * 2**attempt, 30.0)
        try:
            async with http.stream("GET", url, headers=headers, auth=auth) as response:
                if response.status_code in (429, 503):
                    wait = _retry_after(response.headers.get("retry-after"), wait)
                    error = f"{response.status_code} from {source.name}"
                elif response.status_code >= 500:
                    error = f"{response.status_code} from {source.name}"
                elif response.status_code >= 300:
                    text = (await response.aread()).decode(errors="replace")[:300]
                    raise _Failed(f"{response.status_code} from {source.name}: {text}")
                else:
                    kind = response.headers.get("content-type", "")
                    if kind.startswith("multipart/mixed"):
                        parts = await read_multipart(
                            kind, response.aiter_bytes(), settings.max_attachment_bytes
                        )
                        body = orjson.loads(parts.statements)
                        contents = [
                            Content(
                                p.headers.get("x-experience-api-hash", "").lower(),
                                p.headers.get("content-type", "application/octet-stream"),
                                p.length,
                                p.file,
                            )
                            for p in parts.attachments
                            if p.file is not None
                        ]
                    else:
                        body = orjson.loads(await response.aread())
                        contents = []
                    return list(body["statements"]), contents, body.get("more") or None
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__} reaching {source.name}: {exc}"
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise _Failed(f"{source.name} answered something that is not a statement result ({exc})") from exc
        if attempt < RETRIES - 1:
            await asyncio.sleep(wait)
    raise _Failed(f"{error}, {RETRIES} times")


def _retry_after(value: str | None, default: float) -> float:
    try:
        return min(max(float(value or default), 0.0), 60.0)
    except ValueError:
        return default


def _validated(statements: list[dict[str, Any]], who: Caller, report: PullReport) -> list[Prepared]:
    """The statements as this LRS would accept them; the others are reported and left."""
    taken = []
    for i, raw in enumerate(statements):
        version = raw.get("version")
        as_version = Version.V1 if isinstance(version, str) and version.startswith("1.") else Version.V2
        try:
            raw.pop("stored", None)
            authority = raw.get("authority") or who.authority
            taken.append(prepare(raw, as_version, authority, f"statements[{i}]", pseudonym=who.pseudonym))
        except XAPIError as exc:
            report.rejected.append(f"{raw.get('id', '?')}: {exc.message}")
    return taken


async def pull_due(db: Database, settings: Settings, client: httpx.AsyncClient) -> int:
    """Scheduled sources that are due, a few pages each (the worker has other work too)."""
    taken = 0
    for source in await db.read(pull_store.due):
        store = await db.read(partial(_store_name, store_id=source.store_id))
        report = await run(db, settings, WORKER, store, source.name, client=client, max_pages=20)
        taken += report.statements
    return taken


async def _store_name(conn: AsyncConnection, store_id: int) -> str:
    store = await store_store.get(conn, store_id)
    assert store is not None
    return store.name
