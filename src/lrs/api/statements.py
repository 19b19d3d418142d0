"""The Statement resource: PUT, POST, GET (single, query, more) and HEAD."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from lrs.api import docs
from lrs.api.auth import CallerDep
from lrs.api.errors import error_response
from lrs.api.middleware import request_version
from lrs.api.responses import (
    CONSISTENT_THROUGH,
    head_of,
    http_date,
    iso,
    only_params,
    parse_json,
    read_json,
)
from lrs.api.services import Services, ServicesDep
from lrs.ops import attachments as attachment_ops
from lrs.ops import statements as statement_ops
from lrs.ops.caller import Caller
from lrs.ops.statements import Content
from lrs.scopes import STATEMENTS_READ, STATEMENTS_WRITE
from lrs.xapi import signatures
from lrs.xapi.attachments import (
    SIGNATURE_USAGE,
    check_parts,
    declared,
    needs_parts,
    referenced_hashes,
)
from lrs.xapi.errors import BadRequest, NotFound, XAPIError
from lrs.xapi.langtags import parse_accept_language
from lrs.xapi.media import media_type
from lrs.xapi.multipart import Multipart, read_multipart
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


async def _read_body(request: Request, app: Services, who: Caller) -> tuple[Any, Multipart | None]:
    """The statements sent, and the attachment parts when the body is multipart/mixed."""
    kind = media_type(request.headers.get("content-type"))
    if kind == "multipart/mixed":
        limit = who.settings.max_attachment_bytes or app.settings.max_attachment_bytes
        parts = await read_multipart(request.headers.get("content-type", ""), request.stream(), limit)
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
    app: Services, who: Caller, batch: list[Prepared], parts: Multipart | None
) -> list[uuid.UUID]:
    """Write a request's statements; single statements go through group commit."""
    if parts is None and len(batch) == 1:
        return await app.coalescer.write(who, batch)
    contents = []
    for part in parts.attachments if parts else ():
        info = part.info()
        assert part.file is not None and info.hash_header is not None  # checked by check_parts
        contents.append(Content(info.hash_header.lower(), info.content_type or "", info.length, part.file))
    return await statement_ops.write(app.db, app.settings, who, batch, contents)


def _prepare_batch(request: Request, app: Services, who: Caller, body: Any) -> list[Prepared]:
    version = request_version(request.scope)
    if not isinstance(body, list):
        return [prepare(body, version, who.authority, "statement", pseudonym=who.pseudonym)]
    if not body:
        raise BadRequest("statements: the batch is empty")
    limit = app.settings.max_batch_statements
    if len(body) > limit:
        raise BadRequest(f"statements: a batch may hold at most {limit} statements, got {len(body)}")
    return [
        prepare(item, version, who.authority, f"statements[{n}]", pseudonym=who.pseudonym)
        for n, item in enumerate(body)
    ]


@router.put(
    "/statements",
    status_code=204,
    summary="Store one statement with a given id",
    responses=docs.errors(400, 401, 403, 409, 413, 503),
    openapi_extra=docs.xapi(
        [docs.query("statementId", "The statement's id (UUID).", required=True)], docs.STATEMENT_BODY
    ),
)
async def put_statement(request: Request, app: ServicesDep, who: CallerDep) -> Response:
    who.require(STATEMENTS_WRITE)
    params = only_params(request, frozenset({"statementId"}))
    if "statementId" not in params:
        raise BadRequest("statementId: is required to PUT a statement")
    try:
        statement_id = uuid.UUID(params["statementId"])
    except ValueError:
        raise BadRequest("statementId: must be a UUID") from None
    body, parts = await _read_body(request, app, who)
    try:
        if not isinstance(body, dict):
            raise BadRequest("statement: PUT takes one statement (a JSON object)")
        version = request_version(request.scope)
        batch = [prepare(body, version, who.authority, "statement", statement_id, who.pseudonym)]
        _check_attachments(batch, parts)
        await _store(app, who, batch, parts)
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
async def post_statements(request: Request, app: ServicesDep, who: CallerDep) -> Response:
    who.require(STATEMENTS_WRITE)
    only_params(request, frozenset())
    body, parts = await _read_body(request, app, who)
    try:
        batch = _prepare_batch(request, app, who, body)
        _check_attachments(batch, parts)
        ids = await _store(app, who, batch, parts)
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
async def get_statements(request: Request, app: ServicesDep, who: CallerDep) -> Response:
    try:
        who.require(STATEMENTS_READ)
        params = only_params(request, _GET_PARAMS)
        languages = parse_accept_language(request.headers.get("accept-language"))
        if "statementId" in params or "voidedStatementId" in params:
            answer = await _get_single(app, who, params, languages)
        else:
            answer = await _query(request, app, who, params, languages)
    except XAPIError as exc:
        # The spec wants the consistency header on every statement GET, failures included.
        response = error_response(exc.status, exc.message)
        # A statement not found vouches for the read that did not find it (on a replica,
        # an earlier time than the primary's now).
        through = exc.through if isinstance(exc, _Missing) else await statement_ops.consistent_through(app.db)
        response.headers[CONSISTENT_THROUGH] = iso(through)
        return head_of(request, response)
    if answer.attachments:
        return head_of(request, await _multipart(app, who, answer))
    return head_of(request, Response(answer.body, media_type="application/json", headers=answer.headers))


class _Missing(NotFound):
    def __init__(self, message: str, through: datetime) -> None:
        super().__init__(message)
        self.through = through


async def _get_single(app: Services, who: Caller, params: dict[str, str], languages: list[str]) -> _Answer:
    name, statement_id = parse_single(params)
    fmt = parse_format(params["format"]) if "format" in params else Format.EXACT
    attachments = parse_bool(params["attachments"], "attachments") if "attachments" in params else False
    single = await statement_ops.get_one(
        app.db, who, statement_id, voided=name == "voidedStatementId", fmt=fmt, languages=languages
    )
    if single.found is None:
        raise _Missing(f"no statement with {name} {statement_id}", single.through)
    headers = {CONSISTENT_THROUGH: iso(single.through), "Last-Modified": http_date(single.found.stored)}
    body = single.found.statement.encode() if fmt is Format.EXACT else orjson.dumps(single.rendered[0])
    return _Answer(body, headers, single.rendered, attachments)


async def _query(
    request: Request, app: Services, who: Caller, params: dict[str, str], languages: list[str]
) -> _Answer:
    settings = app.settings
    if "more" in params:
        if len(params) > 1:
            raise BadRequest("more: cannot be combined with other parameters")
        query = decode_more(params["more"], who.store_id, app.more_secret)
    else:
        query = parse_query(params, request_version(request.scope), settings.max_query_limit)
        if "limit" not in params:
            query = replace(query, limit=min(settings.default_query_limit, query.limit))
    result = await statement_ops.query(app.db, who, query, languages)
    page = result.page
    more = ""
    if page.more:
        next_query = replace(query, after=page.last_seq, ceiling=result.ceiling, replayed=result.replayed)
        base = settings.base_path.rstrip("/")
        more = f"{base}/statements?more={encode_more(next_query, who.store_id, app.more_secret)}"
    headers = {CONSISTENT_THROUGH: iso(result.through)}
    if page.latest_stored is not None:
        headers["Last-Modified"] = http_date(page.latest_stored)
    if query.format is Format.EXACT:
        listed = page.listed
    else:
        listed = b",".join(orjson.dumps(s) for s in result.rendered)
    body = b'{"statements":[' + listed + b'],"more":' + orjson.dumps(more) + b"}"
    return _Answer(body, headers, result.rendered, query.attachments)


async def _multipart(app: Services, who: Caller, answer: _Answer) -> Response:
    """The statement result first, then each attachment its statements reference, once."""
    hashes = list(dict.fromkeys(h for s in answer.statements or () for h in referenced_hashes(s)))
    stored = await statement_ops.attachments(app.db, who, hashes)
    boundary = secrets.token_hex(16)

    body = attachment_ops.multipart_body(app.db, who.store_id, boundary, answer.body, stored)
    return StreamingResponse(body, media_type=f"multipart/mixed; boundary={boundary}", headers=answer.headers)
