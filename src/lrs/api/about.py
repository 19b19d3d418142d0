"""The About resource: which xAPI versions this LRS speaks."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from lrs.api.responses import head_of, json_response, only_params
from lrs.api.services import ServicesDep

router = APIRouter(tags=["About"])


@router.head("/about", include_in_schema=False)
@router.get("/about", summary="Versions and extensions")
async def about(request: Request, app: ServicesDep) -> Response:
    only_params(request, frozenset())
    served = app.settings.xapi_versions
    return head_of(request, json_response({"version": [v.value for v in served], "extensions": {}}))
