"""The Activities resource: the canonical definition of an activity."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from lrs.api.auth import DEFINITIONS_READ, CallerDep
from lrs.api.responses import json_response, only_params
from lrs.store import activities as activity_store
from lrs.store.database import Database
from lrs.xapi.activities import activity_object
from lrs.xapi.errors import BadRequest
from lrs.xapi.validate import is_iri

router = APIRouter(tags=["Activities"])


@router.head("/activities", include_in_schema=False)
@router.get("/activities", summary="The canonical definition of an activity")
async def get_activity(request: Request, who: CallerDep) -> Response:
    who.require(DEFINITIONS_READ)
    params = only_params(request, frozenset({"activityId"}))
    if "activityId" not in params:
        raise BadRequest("activityId: is required")
    activity_id = params["activityId"]
    if not is_iri(activity_id):
        raise BadRequest(f"activityId: must be an IRI, got {activity_id!r}")
    db: Database = request.app.state.db
    definition = await db.read(lambda conn: activity_store.get(conn, who.store_id, activity_id))
    # An activity the LRS has no definition for is still an Activity (xAPI 2.0).
    response = json_response(activity_object(activity_id, definition))
    if request.method == "HEAD":
        return Response(headers=dict(response.headers))
    return response
