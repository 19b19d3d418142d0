"""Scope names, and which scopes grant each kind of access.

The xAPI names come from the spec's OAuth scopes; ``analytics/*`` and ``admin`` are this
LRS's own. A credential holds a set of scope names; an operation asks for any one of a group.
"""

from __future__ import annotations

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
LRS_SCOPES = frozenset({"analytics/read", "analytics/learners", "admin"})
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
DEFINITIONS_READ = frozenset({"all/read", "all", "statements/read", "define", "profile", "state"})
