"""OpenAPI descriptions of the xAPI routes.

The xAPI routes read their parameters and bodies themselves (the protocol's rules are in
``lrs.xapi``), so FastAPI cannot infer them; these declarations describe them instead.
"""

from __future__ import annotations

from typing import Any

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "status", "message"],
    "properties": {
        "error": {"type": "string", "example": "Bad Request"},
        "status": {"type": "integer", "example": 400},
        "message": {
            "type": "string",
            "example": "statements[2].actor.mbox: must be a mailto IRI with an address",
        },
    },
}

VERSION_HEADER = {
    "name": "X-Experience-API-Version",
    "in": "header",
    "required": True,
    "description": "1.0.x or 2.0.x; the answer carries the version served.",
    "schema": {"type": "string", "example": "2.0.0"},
}


def query(name: str, description: str, required: bool = False, **schema: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": {"type": "string", **schema},
    }


def header(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "header",
        "required": False,
        "description": description,
        "schema": {"type": "string"},
    }


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    text = {
        400: "Invalid request; the message names the property or parameter",
        401: "Missing or wrong credentials",
        403: "The credential lacks the scope",
        404: "Not found",
        409: "Conflicts with what is stored",
        412: "Precondition failed",
        413: "Too large",
        503: "The database is unavailable; retry",
    }
    return {
        s: {"description": text[s], "content": {"application/json": {"schema": ERROR_SCHEMA}}}
        for s in statuses
    }


def xapi(parameters: list[dict[str, Any]], body: dict[str, Any] | None = None) -> dict[str, Any]:
    extra: dict[str, Any] = {"parameters": [VERSION_HEADER, *parameters]}
    if body is not None:
        extra["requestBody"] = body
    return extra


AGENT = 'An Agent as JSON, e.g. {"mbox": "mailto:kari@example.no"}'
STATEMENT_QUERY = [
    query("statementId", "Get one statement by id."),
    query("voidedStatementId", "Get one voided statement by id."),
    query("agent", AGENT + ": statements it is the actor or object of."),
    query("verb", "Verb IRI."),
    query("activity", "Activity IRI: statements with it as object."),
    query("registration", "Registration UUID."),
    query("related_activities", "Match activity in context and substatements too.", enum=["true", "false"]),
    query("related_agents", "Match agent as authority, instructor, team etc. too.", enum=["true", "false"]),
    query("since", "Stored strictly after this ISO 8601 time."),
    query("until", "Stored at or before this ISO 8601 time."),
    query("limit", "Most statements per page; 0 = the server's maximum.", pattern=r"^\d+$"),
    query("format", "How agents, verbs and activities are shown.", enum=["exact", "ids", "canonical"]),
    query("attachments", "Answer multipart/mixed with the attachments.", enum=["true", "false"]),
    query("ascending", "Oldest first.", enum=["true", "false"]),
    query("more", "The opaque token of the previous page's `more` link."),
]
STATEMENT_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {"oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}]}
        },
        "multipart/mixed": {
            "schema": {"type": "string", "format": "binary"},
            "example": "statements part, then one part per attachment",
        },
    },
}
STATEMENT_RESULT: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A statement, or a StatementResult with `more`",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "multipart/mixed": {"schema": {"type": "string"}},
        },
    }
}


def document(id_name: str, activity: bool, agent: bool, registration: bool) -> list[dict[str, Any]]:
    params = []
    if activity:
        params.append(query("activityId", "Activity IRI.", required=True))
    if agent:
        params.append(query("agent", AGENT, required=True))
    if registration:
        params.append(query("registration", "Registration UUID."))
    params.append(query(id_name, "The document's id; leave out on GET to list ids."))
    params.append(query("since", "With GET and no id: only documents updated after this."))
    params.append(header("If-Match", "The ETag the document must still have."))
    params.append(header("If-None-Match", "`*`: only if no document exists."))
    return params


DOCUMENT_BODY = {"required": True, "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}}
