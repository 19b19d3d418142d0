"""Small helpers shared by the routers: request bodies, parameters, xAPI headers, HEAD."""

from __future__ import annotations

from datetime import datetime
from email.utils import format_datetime
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import Response

from lrs import jsontext
from lrs.jsontext import dumpb
from lrs.xapi.errors import BadRequest
from lrs.xapi.media import media_type
from lrs.xapi.timestamps import format_timestamp

CONSISTENT_THROUGH = "X-Experience-API-Consistent-Through"


def json_response(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(dumpb(value), status_code=status, media_type="application/json", headers=headers)


def http_date(instant: datetime) -> str:
    return format_datetime(instant, usegmt=True)


def iso(instant: datetime) -> str:
    return format_timestamp(instant)


def head_of(request: Request, response: Response) -> Response:
    """The response itself for GET; for HEAD, its status and headers without the body."""
    if request.method != "HEAD":
        return response
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
    return Response(status_code=response.status_code, headers=headers)


async def read_json(request: Request, what: str) -> Any:
    """The request body as JSON; 400 naming ``what`` when it is missing or malformed."""
    if media_type(request.headers.get("content-type")) != "application/json":
        raise BadRequest(f"{what}: send it as application/json (Content-Type header)")
    body = await request.body()
    if not body.strip():
        raise BadRequest(f"{what}: the request body is empty")
    return parse_json(body, what)


def parse_json(body: bytes, what: str) -> Any:
    """JSON from a request, or a 400 naming ``what`` and the problem."""
    try:
        return jsontext.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"{what}: the body is not valid JSON ({exc})") from None
    except jsontext.UnrepresentableNumber as exc:
        raise BadRequest(f"{what}: {exc}") from None


def only_params(request: Request, allowed: frozenset[str]) -> dict[str, str]:
    """The query parameters, refusing unknown and repeated ones (none is silently ignored)."""
    params: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        if name not in allowed:
            raise BadRequest(f"{name}: is not a parameter of this resource")
        if name in params:
            raise BadRequest(f"{name}: is given more than once")
        params[name] = value
    return params
