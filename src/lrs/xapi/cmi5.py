"""What this LRS needs to know of cmi5, the xAPI profile an LMS uses to launch courses.

In a cmi5 session the LMS and the course send ``launched``, ``initialized``, ``completed``,
``passed``, ``failed``, ``terminated``, ``abandoned``, ``waived`` and ``satisfied``. The
duration on ``completed``, ``passed`` and ``failed`` is the time since ``initialized``, and
the one on ``terminated`` (or ``abandoned``, when the LMS gives up on a session) is the whole
session, so only a session's end says how long it lasted.
"""

from __future__ import annotations

from typing import Any

CATEGORY = "https://w3id.org/xapi/cmi5/context/categories/cmi5"
SESSION_ID = "https://w3id.org/xapi/cmi5/context/extensions/sessionid"
TERMINATED = "http://adlnet.gov/expapi/verbs/terminated"
ABANDONED = "https://w3id.org/xapi/adl/verbs/abandoned"
SESSION_ENDS = frozenset({TERMINATED, ABANDONED})


def in_session(statement: dict[str, Any]) -> bool:
    """Whether the statement belongs to a cmi5 session: it carries the cmi5 category or a
    cmi5 session id (the course's own statements within a session carry the latter)."""
    context = statement.get("context") or {}
    if SESSION_ID in (context.get("extensions") or {}):
        return True
    categories = (context.get("contextActivities") or {}).get("category", ())
    return any(c.get("id") == CATEGORY for c in categories)
