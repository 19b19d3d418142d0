"""The About resource: which xAPI versions this LRS speaks."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from lrs.api.responses import json_response, only_params

router = APIRouter(tags=["About"])


@router.head("/about", include_in_schema=False)
@router.get("/about", summary="Versions and extensions")
async def about(request: Request) -> Response:
    only_params(request, frozenset())
    served = request.app.state.settings.xapi_versions
    response = json_response({"version": [v.value for v in served], "extensions": {}})
    if request.method == "HEAD":
        return Response(headers=dict(response.headers))
    return response
