"""The Statement resource: PUT, POST, GET (single, query, more) and HEAD."""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncConnection

from lrs.api.auth import DEFINE, STATEMENTS_READ, STATEMENTS_WRITE, Caller, CallerDep
from lrs.api.errors import error_response
from lrs.api.middleware import request_version
from lrs.api.responses import (
    CONSISTENT_THROUGH,
    http_date,
    iso,
    json_response,
    only_params,
    raw_json_response,
    read_json,
)
from lrs.store import activities as activity_store
from lrs.store import statements as statement_store
from lrs.store.database import Database
from lrs.xapi.errors import BadRequest, NotFound, XAPIError
from lrs.xapi.formats import activity_ids, render
from lrs.xapi.langtags import parse_accept_language
from lrs.xapi.query import (
    QUERY_PARAMS,
    SINGLE_PARAMS,
    Format,
    decode_more,
    encode_more,
    parse_format,
    parse_query,
    parse_single,
)
from lrs.xapi.statements import Prepared, prepare

router = APIRouter(tags=["Statements"])

_GET_PARAMS = QUERY_PARAMS | SINGLE_PARAMS | {"more"}


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def _check_batch_size(request: Request, count: int) -> None:
    limit: int = request.app.state.settings.max_batch_statements
    if count > limit:
        raise BadRequest(f"statements: a batch may hold at most {limit} statements, got {count}")


async def _store(request: Request, who: Caller, batch: list[Prepared]) -> list[uuid.UUID]:
    define = who.has(DEFINE)

    async def work(conn: AsyncConnection) -> list[uuid.UUID]:
        ids = await statement_store.insert(conn, who.store_id, who.key, batch)
        if define:
            definitions = [d for p in batch for d in p.definitions]
            await activity_store.merge(conn, who.store_id, definitions)
        return ids

    return await _db(request).write(work)


@router.put("/statements", status_code=204, summary="Store one statement with a given id")
async def put_statement(request: Request, who: CallerDep) -> Response:
    who.require(STATEMENTS_WRITE)
    params = only_params(request, frozenset({"statementId"}))
    if "statementId" not in params:
        raise BadRequest("statementId: is required to PUT a statement")
    try:
        statement_id = uuid.UUID(params["statementId"])
    except ValueError:
        raise BadRequest("statementId: must be a UUID") from None
    body = await read_json(request, "statement")
    if not isinstance(body, dict):
        raise BadRequest("statement: PUT takes one statement (a JSON object)")
    version = request_version(request.scope)
    prepared = prepare(body, version, who.authority, "statement", statement_id)
    await _store(request, who, [prepared])
    return Response(status_code=204)


@router.post("/statements", summary="Store one statement or a batch")
async def post_statements(request: Request, who: CallerDep) -> Response:
    who.require(STATEMENTS_WRITE)
    only_params(request, frozenset())
    body = await read_json(request, "statements")
    version = request_version(request.scope)
    if isinstance(body, list):
        if not body:
            raise BadRequest("statements: the batch is empty")
        _check_batch_size(request, len(body))
        batch = [prepare(item, version, who.authority, f"statements[{n}]") for n, item in enumerate(body)]
    else:
        batch = [prepare(body, version, who.authority, "statement")]
    ids = await _store(request, who, batch)
    return json_response([str(i) for i in ids])


@router.api_route("/statements", methods=["GET", "HEAD"], summary="Get or query statements")
async def get_statements(request: Request, who: CallerDep) -> Response:
    try:
        who.require(STATEMENTS_READ)
        params = only_params(request, _GET_PARAMS)
        mine = who.key if who.only_own_statements else None
        languages = parse_accept_language(request.headers.get("accept-language"))
        if "statementId" in params or "voidedStatementId" in params:
            response = await _get_single(request, who, params, mine, languages)
        else:
            response = await _query(request, who, params, mine, languages)
    except XAPIError as exc:
        # The spec wants the consistency header on every statement GET, failures included.
        response = error_response(exc.status, exc.message)
        through = await _db(request).read(statement_store.consistent_through)
        response.headers[CONSISTENT_THROUGH] = iso(through)
    if request.method == "HEAD":
        return Response(status_code=response.status_code, headers=dict(response.headers))
    return response


async def _get_single(
    request: Request,
    who: Caller,
    params: dict[str, str],
    mine: str | None,
    languages: list[str],
) -> Response:
    name, statement_id = parse_single(params)
    fmt = parse_format(params["format"]) if "format" in params else Format.EXACT
    _attachments_flag(params)

    async def work(conn: AsyncConnection) -> tuple[Any, Any, list[dict[str, Any]]]:
        through = await statement_store.consistent_through(conn)
        found = await statement_store.get_one(
            conn, who.store_id, statement_id, voided=name == "voidedStatementId", credential=mine
        )
        docs = [] if found is None or fmt is Format.EXACT else [orjson.loads(found.statement)]
        return through, found, await _rendered(conn, who.store_id, docs, fmt, languages)

    through, found, rendered = await _db(request).read(work)
    if found is None:
        raise NotFound(f"no statement with {name} {statement_id}")
    headers = {CONSISTENT_THROUGH: iso(through), "Last-Modified": http_date(found.stored)}
    if fmt is Format.EXACT:
        return raw_json_response(found.statement.encode(), headers)
    return json_response(rendered[0], headers=headers)


async def _query(
    request: Request,
    who: Caller,
    params: dict[str, str],
    mine: str | None,
    languages: list[str],
) -> Response:
    settings = request.app.state.settings
    secret: bytes = request.app.state.more_secret
    if "more" in params:
        if len(params) > 1:
            raise BadRequest("more: cannot be combined with other parameters")
        query = decode_more(params["more"], who.store_id, secret)
    else:
        version = request_version(request.scope)
        query = parse_query(params, version, settings.max_query_limit)
        if "limit" not in params:
            query = replace(query, limit=min(settings.default_query_limit, query.limit))
    _attachments_flag({"attachments": "true"} if query.attachments else {})

    async def work(conn: AsyncConnection) -> tuple[Any, Any, int | None, list[dict[str, Any]]]:
        through = await statement_store.consistent_through(conn)
        ceiling = query.ceiling
        if ceiling is None:
            ceiling = await statement_store.max_seq(conn)
        page = await statement_store.query(
            conn, who.store_id, replace(query, ceiling=ceiling), credential=mine
        )
        docs = [] if query.format is Format.EXACT else [orjson.loads(d) for d in page.statements]
        rendered = await _rendered(conn, who.store_id, docs, query.format, languages)
        return through, page, ceiling, rendered

    through, page, ceiling, rendered = await _db(request).read(work)
    more = ""
    if page.more:
        next_query = replace(query, after=page.last_seq, ceiling=ceiling)
        base = settings.base_path.rstrip("/")
        more = f"{base}/statements?more={encode_more(next_query, who.store_id, secret)}"
    headers = {CONSISTENT_THROUGH: iso(through)}
    if page.latest_stored is not None:
        headers["Last-Modified"] = http_date(page.latest_stored)
    if query.format is Format.EXACT:
        body = b",".join(d.encode() for d in page.statements)
    else:
        body = b",".join(orjson.dumps(s) for s in rendered)
    result = b'{"statements":[' + body + b'],"more":' + orjson.dumps(more) + b"}"
    return raw_json_response(result, headers)


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


def _attachments_flag(params: dict[str, str]) -> None:
    from lrs.xapi.query import parse_bool

    if "attachments" in params and parse_bool(params["attachments"], "attachments"):
        raise BadRequest("attachments: multipart responses are not available in this build")
