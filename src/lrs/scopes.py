"""Scope names, and which scopes grant each kind of access.

The xAPI names come from the spec's OAuth scopes; ``analytics/*`` and ``admin`` are this
LRS's own. A credential holds a set of scope names; an operation asks for any one of a group.
"""

from __future__ import annotations

from lrs.xapi.errors import BadRequest

# What each scope lets a credential do, for help texts and error messages.
DESCRIPTIONS = {
    "statements/write": "store statements",
    "statements/read": "read every statement of the store",
    "statements/read/mine": "read the statements this credential stored",
    "all/read": "read everything of the store (statements, documents, definitions)",
    "all": "everything of the xAPI in the store (not analytics/learners or admin)",
    "state": "read and write State documents",
    "define": "define activities (their definitions become canonical)",
    "profile": "read and write Activity and Agent Profile documents",
    "analytics/read": "read aggregate analytics (never individuals)",
    "analytics/learners": "read analytics per learner (names individuals)",
    "cohorts": "manage target groups, their members and assignments, and activity costs",
    "admin": "manage stores, credentials and settings of the installation",
    "region/analytics": "read one region's aggregates over its member stores (`lrs region credentials`)",
}

# The xAPI scope names, plus this LRS's own.
XAPI_SCOPES = frozenset(
    {
        "statements/write",
        "statements/read",
        "statements/read/mine",
        "all/read",
        "all",
        "state",
        "define",
        "profile",
    }
)
LRS_SCOPES = frozenset({"analytics/read", "analytics/learners", "cohorts", "admin", "region/analytics"})
ALL_SCOPES = XAPI_SCOPES | LRS_SCOPES

# What each kind of access needs: any one of the listed scopes grants it.
STATEMENTS_WRITE = frozenset({"statements/write", "all"})
STATEMENTS_READ = frozenset({"statements/read", "statements/read/mine", "all/read", "all"})
STATE_READ = frozenset({"state", "all/read", "all"})
STATE_WRITE = frozenset({"state", "all"})
PROFILE_READ = frozenset({"profile", "all/read", "all"})
PROFILE_WRITE = frozenset({"profile", "all"})
DEFINE = frozenset({"define", "all"})
ADMIN = frozenset({"admin"})
ANALYTICS_READ = frozenset({"analytics/read", "all"})
ANALYTICS_LEARNERS = frozenset({"analytics/learners"})
COHORTS = frozenset({"cohorts"})
REGION_ANALYTICS = frozenset({"region/analytics"})
COSTS = frozenset({"cohorts", "admin"})
DEFINITIONS_READ = frozenset({"all/read", "all", "statements/read", "define", "profile", "state"})


def scope_list() -> str:
    """One line per scope: its name and what it grants."""
    width = max(map(len, DESCRIPTIONS))
    return "\n".join(f"  {name.ljust(width)}  {what}" for name, what in DESCRIPTIONS.items())


def check_scopes(scopes: list[str]) -> list[str]:
    """The scopes, sorted and once each; 400 naming the unknown ones and listing the valid."""
    unknown = sorted(set(scopes) - ALL_SCOPES)
    if unknown or not scopes:
        raise BadRequest(
            f"scopes: unknown {', '.join(repr(s) for s in unknown)}"
            if unknown
            else "scopes: name at least one"
        )
    return sorted(set(scopes))
