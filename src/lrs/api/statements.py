"""The Statement resource: PUT, POST, GET (single, query, more) and HEAD."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from sqlalchemy.ext.asyncio import AsyncConnection

from lrs.analytics import store as analytics_store
from lrs.api import docs
from lrs.api.auth import DEFINE, STATEMENTS_READ, STATEMENTS_WRITE, Caller, CallerDep
from lrs.api.coalesce import Coalescer
from lrs.api.errors import error_response
from lrs.api.middleware import request_version
from lrs.api.multipart import Multipart, read_multipart
from lrs.api.responses import (
    CONSISTENT_THROUGH,
    database,
    http_date,
    iso,
    media_type,
    only_params,
    parse_json,
    read_json,
)
from lrs.observability import BATCH, STATEMENTS
from lrs.store import activities as activity_store
from lrs.store import attachments as attachment_store
from lrs.store import statements as statement_store
from lrs.store.database import Database
from lrs.xapi import signatures
from lrs.xapi.attachments import (
    SIGNATURE_USAGE,
    check_parts,
    declared,
    needs_parts,
    referenced_hashes,
)
from lrs.xapi.errors import BadRequest, NotFound, XAPIError
from lrs.xapi.formats import activity_ids, render
from lrs.xapi.langtags import parse_accept_language
from lrs.xapi.query import (
    QUERY_PARAMS,
    SINGLE_PARAMS,
    Format,
    decode_more,
    encode_more,
    parse_bool,
    parse_format,
    parse_query,
    parse_single,
)
from lrs.xapi.statements import Prepared, prepare

router = APIRouter(tags=["Statements"])

_GET_PARAMS = QUERY_PARAMS | SINGLE_PARAMS | {"more"}


# --- writing ----------------------------------------------------------------------------------


async def _read_body(request: Request, who: Caller) -> tuple[Any, Multipart | None]:
    """The statements sent, and the attachment parts when the body is multipart/mixed."""
    kind = media_type(request)
    if kind == "multipart/mixed":
        limit: int = who.settings.max_attachment_bytes or request.app.state.settings.max_attachment_bytes
        parts = await read_multipart(request, limit)
        try:
            return parse_json(parts.statements, "statements (the first part)"), parts
        except BadRequest:
            parts.close()
            raise
    if kind == "application/json":
        return await read_json(request, "statements"), None
    raise BadRequest(
        "Content-Type: statements are sent as application/json, or as "
        "multipart/mixed when attachments travel with them"
    )


def _check_attachments(batch: list[Prepared], parts: Multipart | None) -> None:
    """Parts must be exactly the declared attachments; signatures must verify."""
    statements = [p.statement for p in batch]
    if parts is None:
        if needs_parts(statements):
            raise BadRequest(
                "attachments: the statements declare attachment content but the "
                "request is not multipart/mixed; send the content as parts"
            )
        return
    check_parts(statements, [part.info() for part in parts.attachments])
    by_hash = {
        part.info().hash_header.lower(): part  # type: ignore[union-attr]
        for part in parts.attachments
    }
    for n, p in enumerate(batch):
        for attachment in declared(p.statement):
            if attachment["usageType"] != SIGNATURE_USAGE:
                continue
            part = by_hash.get(attachment["sha2"].lower())
            if part is None or part.file is None:
                raise BadRequest(f"statements[{n}]: the signature attachment has no part")
            part.file.seek(0)
            signatures.verify(part.file.read(), p.statement, f"statements[{n}]")


async def _store(
    request: Request, who: Caller, batch: list[Prepared], parts: Multipart | None
) -> list[uuid.UUID]:
    """Write a request's statements; single statements go through group commit."""
    if parts is None and len(batch) == 1:
        coalescer: Coalescer = request.app.state.coalescer
        return await coalescer.write(who, batch)
    return await write_batch(request.app, who, batch, parts)


async def write_batch(
    app: Any, who: Caller, batch: list[Prepared], parts: Multipart | None = None
) -> list[uuid.UUID]:
    """One transaction: statements, rollups, activity definitions, attachments."""
    define = who.has(DEFINE)
    content_types = {a["sha2"].lower(): a["contentType"] for p in batch for a in declared(p.statement)}

    settings = who.settings
    rollups: bool = app.state.settings.analytics_rollups
    zone = settings.zone(app.state.settings.default_timezone)
    counted: list[int] = []  # per attempt; only the committed (last) one counts

    async def work(conn: AsyncConnection) -> list[uuid.UUID]:
        written = await statement_store.insert(conn, who.store_id, who.key, batch)
        counted.append(len(written.counted))
        ids = written.ids
        if define:
            definitions = [d for p in batch for d in p.definitions]
            await activity_store.merge(conn, who.store_id, definitions)
        for part in parts.attachments if parts else ():
            info = part.info()
            sha2 = (info.hash_header or "").lower()
            assert part.file is not None
            await attachment_store.save(
                conn,
                who.store_id,
                who.key,
                sha2,
                content_types.get(sha2, info.content_type or ""),
                info.length,
                part.file,
            )
        # Analytics rollups change in the same transaction as the statements, last: their
        # per-activity and per-period rows are shared by concurrent batches, so the row locks
        # on them are taken as close to the commit as possible.
        if rollups:
            counted_statements = [p.statement for p in written.counted]
            await analytics_store.add(conn, who.store_id, counted_statements, settings, zone)
            await analytics_store.recompute_voided(conn, who.store_id, written.voided, settings, zone)
        return ids

    db: Database = app.state.db
    ids = await db.write(work)
    BATCH.observe(len(batch))
    STATEMENTS.inc(counted[-1])
    return ids


def _prepare_batch(request: Request, who: Caller, body: Any) -> list[Prepared]:
    version = request_version(request.scope)
    if not isinstance(body, list):
        return [prepare(body, version, who.authority, "statement")]
    if not body:
        raise BadRequest("statements: the batch is empty")
    limit: int = request.app.state.settings.max_batch_statements
    if len(body) > limit:
        raise BadRequest(f"statements: a batch may hold at most {limit} statements, got {len(body)}")
    return [prepare(item, version, who.authority, f"statements[{n}]") for n, item in enumerate(body)]


@router.put(
    "/statements",
    status_code=204,
    summary="Store one statement with a given id",
    responses=docs.errors(400, 401, 403, 409, 413, 503),
    openapi_extra=docs.xapi(
        [docs.query("statementId", "The statement's id (UUID).", required=True)], docs.STATEMENT_BODY
    ),
)
async def put_statement(request: Request, who: CallerDep) -> Response:
    who.require(STATEMENTS_WRITE)
    params = only_params(request, frozenset({"statementId"}))
    if "statementId" not in params:
        raise BadRequest("statementId: is required to PUT a statement")
    try:
        statement_id = uuid.UUID(params["statementId"])
    except ValueError:
        raise BadRequest("statementId: must be a UUID") from None
    body, parts = await _read_body(request, who)
    try:
        if not isinstance(body, dict):
            raise BadRequest("statement: PUT takes one statement (a JSON object)")
        version = request_version(request.scope)
        batch = [prepare(body, version, who.authority, "statement", statement_id)]
        _check_attachments(batch, parts)
        await _store(request, who, batch, parts)
    finally:
        if parts:
            parts.close()
    return Response(status_code=204)


@router.post(
    "/statements",
    summary="Store one statement or a batch",
    responses={
        200: {"description": "The statements' ids, in order"},
        **docs.errors(400, 401, 403, 409, 413, 503),
    },
    openapi_extra=docs.xapi([], docs.STATEMENT_BODY),
)
async def post_statements(request: Request, who: CallerDep) -> Response:
    who.require(STATEMENTS_WRITE)
    only_params(request, frozenset())
    body, parts = await _read_body(request, who)
    try:
        batch = _prepare_batch(request, who, body)
        _check_attachments(batch, parts)
        ids = await _store(request, who, batch, parts)
    finally:
        if parts:
            parts.close()
    return Response(orjson.dumps([str(i) for i in ids]), media_type="application/json")


# --- reading ----------------------------------------------------------------------------------


@dataclass
class _Answer:
    """A statement GET's result before it is written out as JSON or multipart."""

    body: bytes
    headers: dict[str, str]
    statements: list[dict[str, Any]] | None = None  # parsed, when attachments are wanted
    attachments: bool = False


@router.head("/statements", include_in_schema=False)
@router.get(
    "/statements",
    summary="Get or query statements",
    responses={**docs.STATEMENT_RESULT, **docs.errors(400, 401, 403, 404, 503)},
    openapi_extra=docs.xapi(docs.STATEMENT_QUERY),
)
async def get_statements(request: Request, who: CallerDep) -> Response:
    try:
        who.require(STATEMENTS_READ)
        params = only_params(request, _GET_PARAMS)
        mine = who.key if who.only_own_statements else None
        languages = parse_accept_language(request.headers.get("accept-language"))
        if "statementId" in params or "voidedStatementId" in params:
            answer = await _get_single(request, who, params, mine, languages)
        else:
            answer = await _query(request, who, params, mine, languages)
    except XAPIError as exc:
        # The spec wants the consistency header on every statement GET, failures included.
        response = error_response(exc.status, exc.message)
        through = await database(request).read(statement_store.consistent_through)
        response.headers[CONSISTENT_THROUGH] = iso(through)
        return _head(request, response)
    if answer.attachments:
        return _head(request, await _multipart(request, who, answer))
    return _head(request, Response(answer.body, media_type="application/json", headers=answer.headers))


def _head(request: Request, response: Response) -> Response:
    if request.method != "HEAD":
        return response
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
    return Response(status_code=response.status_code, headers=headers)


async def _get_single(
    request: Request,
    who: Caller,
    params: dict[str, str],
    mine: str | None,
    languages: list[str],
) -> _Answer:
    name, statement_id = parse_single(params)
    fmt = parse_format(params["format"]) if "format" in params else Format.EXACT
    attachments = parse_bool(params["attachments"], "attachments") if "attachments" in params else False

    async def work(conn: AsyncConnection) -> tuple[Any, Any, list[dict[str, Any]]]:
        through = await statement_store.consistent_through(conn)
        found = await statement_store.get_one(
            conn, who.store_id, statement_id, voided=name == "voidedStatementId", credential=mine
        )
        docs = [] if found is None else [orjson.loads(found.statement)]
        return through, found, await _rendered(conn, who.store_id, docs, fmt, languages)

    through, found, rendered = await database(request).read(work)
    if found is None:
        raise NotFound(f"no statement with {name} {statement_id}")
    headers = {CONSISTENT_THROUGH: iso(through), "Last-Modified": http_date(found.stored)}
    body = found.statement.encode() if fmt is Format.EXACT else orjson.dumps(rendered[0])
    return _Answer(body, headers, rendered, attachments)


async def _query(
    request: Request,
    who: Caller,
    params: dict[str, str],
    mine: str | None,
    languages: list[str],
) -> _Answer:
    settings = request.app.state.settings
    secret: bytes = request.app.state.more_secret
    if "more" in params:
        if len(params) > 1:
            raise BadRequest("more: cannot be combined with other parameters")
        query = decode_more(params["more"], who.store_id, secret)
    else:
        query = parse_query(params, request_version(request.scope), settings.max_query_limit)
        if "limit" not in params:
            query = replace(query, limit=min(settings.default_query_limit, query.limit))
    parse_all = query.format is not Format.EXACT or query.attachments

    async def work(conn: AsyncConnection) -> tuple[Any, Any, int | None, list[dict[str, Any]]]:
        through = await statement_store.consistent_through(conn)
        ceiling = query.ceiling
        if ceiling is None:
            ceiling = await statement_store.max_seq(conn)
        page = await statement_store.query(
            conn, who.store_id, replace(query, ceiling=ceiling), credential=mine
        )
        docs = [orjson.loads(d) for d in page.statements] if parse_all else []
        rendered = await _rendered(conn, who.store_id, docs, query.format, languages)
        return through, page, ceiling, rendered

    through, page, ceiling, rendered = await database(request).read(work)
    more = ""
    if page.more:
        next_query = replace(query, after=page.last_seq, ceiling=ceiling)
        base = settings.base_path.rstrip("/")
        more = f"{base}/statements?more={encode_more(next_query, who.store_id, secret)}"
    headers = {CONSISTENT_THROUGH: iso(through)}
    if page.latest_stored is not None:
        headers["Last-Modified"] = http_date(page.latest_stored)
    if query.format is Format.EXACT:
        listed = b",".join(d.encode() for d in page.statements)
    else:
        listed = b",".join(orjson.dumps(s) for s in rendered)
    body = b'{"statements":[' + listed + b'],"more":' + orjson.dumps(more) + b"}"
    return _Answer(body, headers, rendered, query.attachments)


async def _rendered(
    conn: AsyncConnection,
    store_id: int,
    docs: list[dict[str, Any]],
    fmt: Format,
    languages: list[str],
) -> list[dict[str, Any]]:
    """Statements in the asked format; canonical reads the canonical activity definitions."""
    if fmt is Format.EXACT or not docs:
        return docs
    definitions: dict[str, dict[str, Any]] = {}
    if fmt is Format.CANONICAL:
        wanted = set().union(*(activity_ids(d) for d in docs))
        definitions = await activity_store.get_many(conn, store_id, wanted)
    return [render(d, fmt, languages, definitions) for d in docs]


async def _multipart(request: Request, who: Caller, answer: _Answer) -> Response:
    """The statement result first, then each attachment its statements reference, once."""
    hashes = list(dict.fromkeys(h for s in answer.statements or () for h in referenced_hashes(s)))
    db = database(request)
    # A credential that reads only its own statements gets only content it sent itself: its
    # statements could declare any hash, another credential's attachment's among them.
    mine = who.key if who.only_own_statements else None
    stored = await db.read(lambda conn: attachment_store.find(conn, who.store_id, hashes, mine))
    boundary = secrets.token_hex(16)

    async def body() -> AsyncIterator[bytes]:
        yield (f"--{boundary}\r\nContent-Type: application/json\r\n\r\n".encode() + answer.body + b"\r\n")
        for attachment in stored:
            yield (
                f"--{boundary}\r\nContent-Type: {attachment.content_type}\r\n"
                f"Content-Transfer-Encoding: binary\r\n"
                f"X-Experience-API-Hash: {attachment.sha2}\r\n\r\n"
            ).encode()
            async with db.engine.connect() as conn:
                async for chunk in attachment_store.chunks(conn, who.store_id, attachment.sha2):
                    yield chunk
            yield b"\r\n"
        yield f"--{boundary}--\r\n".encode()

    return StreamingResponse(
        body(), media_type=f"multipart/mixed; boundary={boundary}", headers=answer.headers
    )
