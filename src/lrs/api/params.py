"""Query parameters a route does not take are refused, never ignored.

A client that misspells ``group_by`` or sends a filter this LRS does not offer would
otherwise get an answer that looks right and is not what it asked for.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from lrs.xapi.errors import BadRequest

_KNOWN: dict[int, frozenset[str]] = {}


def _query_names(dependant: Dependant) -> set[str]:
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def check_parameters(request: Request) -> None:
    """400 naming the first query parameter the matched route does not take."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute):
        return
    known = _KNOWN.get(id(route))
    if known is None:
        known = _KNOWN[id(route)] = frozenset(_query_names(route.dependant))
    for name in request.query_params:
        if name not in known:
            taken = ", ".join(sorted(known)) or "none"
            raise BadRequest(f"{name}: not a parameter of {route.path} (it takes {taken})")


async def known_parameters(request: Request) -> None:
    """``check_parameters`` as a dependency, for a whole router."""
    check_parameters(request)
