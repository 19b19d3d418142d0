"""The Activities resource: the canonical definition of an activity."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from lrs.api.auth import CallerDep
from lrs.api.responses import head_of, json_response, only_params
from lrs.api.services import ServicesDep
from lrs.ops import definitions
from lrs.scopes import DEFINITIONS_READ
from lrs.xapi.errors import BadRequest
from lrs.xapi.validate import check_iri

router = APIRouter(tags=["Activities"])


@router.head("/activities", include_in_schema=False)
@router.get("/activities", summary="The canonical definition of an activity")
async def get_activity(request: Request, app: ServicesDep, who: CallerDep) -> Response:
    who.require(DEFINITIONS_READ)
    params = only_params(request, frozenset({"activityId"}))
    if "activityId" not in params:
        raise BadRequest("activityId: is required")
    activity_id = check_iri(params["activityId"], "activityId")
    return head_of(request, json_response(await definitions.activity(app.db, who, activity_id)))
