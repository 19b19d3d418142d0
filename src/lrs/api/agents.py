"""The Agents resource: the Person object for an agent."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from lrs.api.auth import CallerDep
from lrs.api.middleware import request_version
from lrs.api.responses import head_of, json_response, only_params
from lrs.api.services import ServicesDep
from lrs.ops import definitions
from lrs.scopes import DEFINITIONS_READ
from lrs.xapi.agents import ifi_key, parse_agent_param
from lrs.xapi.errors import BadRequest

router = APIRouter(tags=["Agents"])


@router.head("/agents", include_in_schema=False)
@router.get("/agents", summary="The Person object for an agent")
async def get_agent(request: Request, app: ServicesDep, who: CallerDep) -> Response:
    who.require(DEFINITIONS_READ)
    params = only_params(request, frozenset({"agent"}))
    if "agent" not in params:
        raise BadRequest("agent: is required")
    agent = parse_agent_param(params["agent"], "agent", request_version(request.scope))
    if ifi_key(agent) is None:
        raise BadRequest("agent: must be identified by mbox, mbox_sha1sum, openid or account")
    return head_of(request, json_response(await definitions.agent(app.db, who, agent)))
