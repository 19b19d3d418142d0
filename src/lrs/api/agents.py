"""The Agents resource: the Person object for an agent."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from lrs.api.auth import DEFINITIONS_READ, CallerDep
from lrs.api.middleware import request_version
from lrs.api.responses import json_response, only_params
from lrs.jsontext import dumps
from lrs.store import agents as agent_store
from lrs.store.database import Database
from lrs.xapi.activities import person
from lrs.xapi.agents import ifi_key, parse_agent_param
from lrs.xapi.errors import BadRequest

router = APIRouter(tags=["Agents"])

_IFIS = ("mbox", "mbox_sha1sum", "openid", "account")


@router.head("/agents", include_in_schema=False)
@router.get("/agents", summary="The Person object for an agent")
async def get_agent(request: Request, who: CallerDep) -> Response:
    who.require(DEFINITIONS_READ)
    params = only_params(request, frozenset({"agent"}))
    if "agent" not in params:
        raise BadRequest("agent: is required")
    agent = parse_agent_param(params["agent"], "agent", request_version(request.scope))
    key = ifi_key(agent)
    if key is None:
        raise BadRequest("agent: must be identified by mbox, mbox_sha1sum, openid or account")
    ifi = {k: agent[k] for k in _IFIS if k in agent}
    db: Database = request.app.state.db
    names = await db.read(lambda conn: agent_store.names(conn, who.store_id, key, dumps(ifi)))
    response = json_response(person(agent, names))
    if request.method == "HEAD":
        return Response(headers=dict(response.headers))
    return response
