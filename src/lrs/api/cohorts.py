"""Target groups and costs: cohorts, their members and assignments, and what activities cost.

Cohorts need the ``cohorts`` scope (an HR system syncing membership, the training office);
costs need ``cohorts`` or ``admin``. The figures built on them are read under
``/analytics`` with ``analytics/read``.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from lrs.api.auth import CallerDep
from lrs.api.params import known_parameters
from lrs.api.services import ServicesDep
from lrs.ops import cohorts as cohort_ops
from lrs.ops import costs as cost_ops
from lrs.ops.cohorts import Assignment, Cohort, Membership, MembershipChange
from lrs.ops.costs import Cost
from lrs.scopes import COHORTS
from lrs.xapi.errors import BadRequest
from lrs.xapi.media import media_type
from lrs.xapi.timestamps import format_timestamp, parse_timestamp

router = APIRouter(prefix="/analytics", tags=["Cohorts and costs"], dependencies=[Depends(known_parameters)])

_ERRORS: dict[int | str, dict[str, str]] = {
    400: {"description": "A parameter or the body is malformed"},
    401: {"description": "Missing or wrong credentials"},
    403: {"description": "The credential lacks the `cohorts` scope"},
    404: {"description": "No such cohort, assignment or cost"},
    409: {"description": "The change conflicts with the cohorts as they are"},
}


def _instant(value: str | None, field: str) -> datetime | None:
    if value is None:
        return None
    instant = parse_timestamp(value)
    if instant is None:
        raise BadRequest(f"{field}: must be an ISO 8601 timestamp with a time zone, got {value!r}")
    return instant


def _stamp(value: datetime | None) -> str | None:
    return None if value is None else format_timestamp(value)


class CohortIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    parent: str | None = Field(default=None, description="The cohort it sits inside (none: top level).")


class CohortOut(BaseModel):
    name: str
    parent: str | None
    created: str
    changed: str | None = Field(description="When its membership last changed.")
    members: int = Field(description="Its own members now (not those of cohorts inside it).")
    assignments: int

    @classmethod
    def of(cls, c: Cohort) -> CohortOut:
        return cls(
            name=c.name,
            parent=c.parent,
            created=format_timestamp(c.created),
            changed=_stamp(c.changed),
            members=c.members,
            assignments=c.assignments,
        )


class MembershipOut(BaseModel):
    cohort: str
    members: int
    joined: int
    left: int
    at: str

    @classmethod
    def of(cls, m: MembershipChange) -> MembershipOut:
        return cls(
            cohort=m.cohort, members=m.members, joined=m.joined, left=m.left, at=format_timestamp(m.at)
        )


class MemberOut(BaseModel):
    learner: str = Field(description="The learner's identifier, as analytics name learners.")
    name: str | None
    valid_from: str
    valid_to: str | None

    @classmethod
    def of(cls, m: Membership) -> MemberOut:
        return cls(
            learner=m.learner,
            name=m.name,
            valid_from=format_timestamp(m.valid_from),
            valid_to=_stamp(m.valid_to),
        )


class AssignmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    activity: str = Field(description="The activity IRI the cohort must complete.")
    due: str | None = Field(default=None, description="Due date (ISO 8601 timestamp); none: no deadline.")


class AssignmentOut(BaseModel):
    cohort: str
    activity: str
    due: str | None

    @classmethod
    def of(cls, a: Assignment) -> AssignmentOut:
        return cls(cohort=a.cohort, activity=a.activity, due=_stamp(a.due))


class CostIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    activity: str = Field(description="The activity IRI.")
    amount: Decimal = Field(description="What it cost to make and run, at most two decimals.")
    currency: str = Field(description="ISO 4217 code, e.g. NOK.")


class CostOut(BaseModel):
    activity: str
    amount: float
    currency: str
    updated: str

    @classmethod
    def of(cls, c: Cost) -> CostOut:
        return cls(
            activity=c.activity,
            amount=float(c.amount),
            currency=c.currency,
            updated=format_timestamp(c.updated),
        )


# --- cohorts --------------------------------------------------------------------------------


@router.get("/cohorts", response_model=list[CohortOut], responses=_ERRORS, summary="List cohorts")
async def list_cohorts(app: ServicesDep, who: CallerDep) -> list[CohortOut]:
    return [CohortOut.of(c) for c in await cohort_ops.list_all(app.db, who)]


@router.get("/cohorts/{name}", response_model=CohortOut, responses=_ERRORS, summary="One cohort")
async def get_cohort(name: str, app: ServicesDep, who: CallerDep) -> CohortOut:
    return CohortOut.of(await cohort_ops.get(app.db, who, name))


@router.put(
    "/cohorts/{name}",
    response_model=CohortOut,
    responses={**_ERRORS, 201: {"description": "Created"}},
    summary="Create a cohort, or move it under another parent",
)
async def put_cohort(
    name: str, app: ServicesDep, who: CallerDep, response: Response, body: CohortIn | None = None
) -> CohortOut:
    cohort, created = await cohort_ops.put(app.db, who, name, body.parent if body else None)
    response.status_code = 201 if created else 200
    return CohortOut.of(cohort)


@router.delete(
    "/cohorts/{name}",
    status_code=204,
    responses=_ERRORS,
    summary="Delete a cohort, its history and assignments",
)
async def delete_cohort(name: str, app: ServicesDep, who: CallerDep) -> Response:
    await cohort_ops.delete(app.db, who, name)
    return Response(status_code=204)


@router.put(
    "/cohorts/{name}/members",
    response_model=MembershipOut,
    responses=_ERRORS,
    summary="Replace the members (JSON array of Agents, or CSV)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
                "text/csv": {
                    "schema": {"type": "string"},
                    "example": "account_homepage,account_name,name\n"
                    "https://hr.kommune.no,4711,Kari Nordmann\n",
                },
            },
        }
    },
)
async def replace_members(
    name: str,
    request: Request,
    app: ServicesDep,
    who: CallerDep,
    since: Annotated[
        str | None,
        Query(
            alias="from",
            description="When the change took effect (ISO 8601); default now. Not before the "
            "cohort's last change, not in the future.",
        ),
    ] = None,
) -> MembershipOut:
    who.require(COHORTS)  # before reading what may be a large body
    at = _instant(since, "from")
    agents = cohort_ops.parse_members(await request.body(), media_type(request.headers.get("content-type")))
    return MembershipOut.of(await cohort_ops.replace_members(app.db, who, name, agents, at))


@router.get(
    "/cohorts/{name}/members",
    response_model=list[MemberOut],
    responses=_ERRORS,
    summary="The members at a moment, or the whole membership history",
)
async def list_members(
    name: str,
    app: ServicesDep,
    who: CallerDep,
    at: Annotated[str | None, Query(description="Members at this moment (ISO 8601); default now.")] = None,
    history: Annotated[bool, Query(description="Every membership, past ones included.")] = False,
) -> list[MemberOut]:
    when = _instant(at, "at")
    if history and when is not None:
        raise BadRequest("history: give either at or history=true, not both")
    return [MemberOut.of(m) for m in await cohort_ops.members(app.db, who, name, when, history)]


@router.get(
    "/cohorts/{name}/assignments",
    response_model=list[AssignmentOut],
    responses=_ERRORS,
    summary="What the cohort must complete",
)
async def list_assignments(name: str, app: ServicesDep, who: CallerDep) -> list[AssignmentOut]:
    return [AssignmentOut.of(a) for a in await cohort_ops.assignments(app.db, who, name, None)]


@router.put(
    "/cohorts/{name}/assignments",
    response_model=AssignmentOut,
    responses=_ERRORS,
    summary="Assign an activity to the cohort (again: change its due date)",
)
async def assign(name: str, body: AssignmentIn, app: ServicesDep, who: CallerDep) -> AssignmentOut:
    due = _instant(body.due, "due")
    return AssignmentOut.of(await cohort_ops.assign(app.db, who, name, body.activity, due))


@router.delete(
    "/cohorts/{name}/assignments", status_code=204, responses=_ERRORS, summary="Withdraw an assignment"
)
async def unassign(
    name: str,
    app: ServicesDep,
    who: CallerDep,
    activity: Annotated[str, Query(description="The activity IRI.")],
) -> Response:
    await cohort_ops.unassign(app.db, who, name, activity)
    return Response(status_code=204)


# --- costs ----------------------------------------------------------------------------------


@router.get("/costs", response_model=list[CostOut], responses=_ERRORS, summary="Recorded activity costs")
async def list_costs(app: ServicesDep, who: CallerDep) -> list[CostOut]:
    return [CostOut.of(c) for c in await cost_ops.list_all(app.db, who)]


@router.put("/costs", response_model=CostOut, responses=_ERRORS, summary="Record what an activity cost")
async def put_cost(body: CostIn, app: ServicesDep, who: CallerDep) -> CostOut:
    return CostOut.of(await cost_ops.put(app.db, who, body.activity, body.amount, body.currency))


@router.delete("/costs", status_code=204, responses=_ERRORS, summary="Forget an activity's cost")
async def delete_cost(
    app: ServicesDep, who: CallerDep, activity: Annotated[str, Query(description="The activity IRI.")]
) -> Response:
    await cost_ops.delete(app.db, who, activity)
    return Response(status_code=204)
