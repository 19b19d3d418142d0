"""State, Activity Profile and Agent Profile resources: one implementation, three mounts."""

from __future__ import annotations

from enum import Enum
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from lrs.api import docs
from lrs.api.auth import CallerDep
from lrs.api.middleware import request_version
from lrs.api.responses import head_of, http_date, json_response
from lrs.api.services import Services, ServicesDep
from lrs.ops import documents as document_ops
from lrs.ops.caller import Caller
from lrs.ops.documents import Preconditions
from lrs.scopes import PROFILE_READ, PROFILE_WRITE, STATE_READ, STATE_WRITE
from lrs.xapi.documents import (
    DEFAULT_CONTENT_TYPE,
    SHAPES,
    DocumentRequest,
    Kind,
    check_json,
    parse_params,
)
from lrs.xapi.errors import BadRequest, NotFound, PayloadTooLarge

router = APIRouter()

_SCOPES = {
    Kind.STATE: (STATE_READ, STATE_WRITE),
    Kind.ACTIVITY_PROFILE: (PROFILE_READ, PROFILE_WRITE),
    Kind.AGENT_PROFILE: (PROFILE_READ, PROFILE_WRITE),
}
_PATHS = {
    Kind.STATE: ("/activities/state", "State"),
    Kind.ACTIVITY_PROFILE: ("/activities/profile", "Activity Profile"),
    Kind.AGENT_PROFILE: ("/agents/profile", "Agent Profile"),
}


def _parse(request: Request, kind: Kind) -> DocumentRequest:
    params: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        if name in params:
            raise BadRequest(f"{name}: is given more than once")
        params[name] = value
    return parse_params(kind, params, request.method, request_version(request.scope))


async def _read_document(request: Request, app: Services, who: Caller) -> tuple[bytes, str]:
    content = await request.body()
    limit = who.settings.max_document_bytes or app.settings.max_document_bytes
    if len(content) > limit:
        raise PayloadTooLarge(f"document: larger than {limit} bytes")
    content_type = request.headers.get("content-type") or DEFAULT_CONTENT_TYPE
    check_json(content, content_type)
    return content, content_type


def _preconditions(request: Request) -> Preconditions:
    return Preconditions(request.headers.get("if-match"), request.headers.get("if-none-match"))


async def get_document(request: Request, app: Services, who: Caller, kind: Kind) -> Response:
    who.require(_SCOPES[kind][0])
    req = _parse(request, kind)
    address = req.address
    if address.doc_id is None:
        rows = await document_ops.list_ids(app.db, who, address, req.since)
        headers = {}
        if rows:
            headers["Last-Modified"] = http_date(max(updated for _, updated in rows))
        response = json_response([doc_id for doc_id, _ in rows], headers=headers)
    else:
        doc = await document_ops.get(app.db, who, address)
        if doc is None:
            raise NotFound(f"no document with that {_id_name(kind)}")
        response = Response(
            doc.content,
            media_type=doc.content_type,
            headers={"ETag": doc.etag, "Last-Modified": http_date(doc.updated)},
        )
    return head_of(request, response)


async def write_document(request: Request, app: Services, who: Caller, kind: Kind) -> Response:
    """PUT replaces; POST merges JSON objects into an existing JSON document."""
    who.require(_SCOPES[kind][1])
    req = _parse(request, kind)
    content, content_type = await _read_document(request, app, who)
    version = request_version(request.scope)
    await document_ops.write(
        app.db, who, req.address, request.method, version, content, content_type, _preconditions(request)
    )
    return Response(status_code=204)


async def delete_document(request: Request, app: Services, who: Caller, kind: Kind) -> Response:
    who.require(_SCOPES[kind][1])
    req = _parse(request, kind)
    version = request_version(request.scope)
    await document_ops.delete(app.db, who, req.address, version, _preconditions(request))
    return Response(status_code=204)


def _id_name(kind: Kind) -> str:
    return "stateId" if kind is Kind.STATE else "profileId"


def _register(kind: Kind) -> None:
    path, title = _PATHS[kind]

    async def get(request: Request, app: ServicesDep, who: CallerDep) -> Response:
        return await get_document(request, app, who, kind)

    async def write(request: Request, app: ServicesDep, who: CallerDep) -> Response:
        return await write_document(request, app, who, kind)

    async def delete(request: Request, app: ServicesDep, who: CallerDep) -> Response:
        return await delete_document(request, app, who, kind)

    tags: list[str | Enum] = [title]
    name = kind.name.lower()
    params = docs.document(*SHAPES[kind])
    read_responses: dict[int | str, dict[str, Any]] = {
        200: {"description": "The document (with its ETag), or a JSON list of ids"},
        **docs.errors(400, 401, 403, 404, 503),
    }
    router.add_api_route(path, get, methods=["HEAD"], include_in_schema=False)
    router.add_api_route(
        path,
        get,
        methods=["GET"],
        tags=tags,
        operation_id=f"get_{name}",
        summary=f"Get one {title} document, or list their ids",
        responses=read_responses,
        openapi_extra=docs.xapi(params),
    )
    for method, summary in (
        ("PUT", f"Store a {title} document"),
        ("POST", f"Merge JSON into a {title} document"),
    ):
        router.add_api_route(
            path,
            write,
            methods=[method],
            tags=tags,
            status_code=204,
            operation_id=f"{method.lower()}_{name}",
            summary=summary,
            responses=docs.errors(400, 401, 403, 409, 412, 413, 503),
            openapi_extra=docs.xapi(params, docs.DOCUMENT_BODY),
        )
    every = " (or all of them without stateId)" if kind is Kind.STATE else ""
    router.add_api_route(
        path,
        delete,
        methods=["DELETE"],
        tags=tags,
        status_code=204,
        operation_id=f"delete_{name}",
        summary=f"Delete a {title} document{every}",
        responses=docs.errors(400, 401, 403, 412, 503),
        openapi_extra=docs.xapi(params),
    )


for _kind in Kind:
    _register(_kind)
