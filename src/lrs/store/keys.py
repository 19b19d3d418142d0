"""How values become index keys: namespaced by what they identify, hashed when too long.

A statement is indexed under the agents, activities, verb and registration a query can
filter by (``xapi.statements`` says which); the statement index keeps one row per
(key, statement). Analytics rollups and canonical activities key their rows the same way.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

# What a key identifies, as its prefix in the statement index.
PREFIXES = {"agent": "a:", "activity": "i:", "verb": "v:", "registration": "r:"}

# Keys longer than this many UTF-8 bytes are hashed. PostgreSQL caps a btree entry at about
# 2,700 bytes and some keys are made of two such values (activity and learner), so the
# limit is on bytes, not characters: 512 characters outside the BMP are 2,048 bytes.
MAX_KEY_BYTES = 512


# The same learners, activities and verbs recur in every batch: a fold asks for ~20 keys a
# statement, and the cache makes most of those a lookup.
@lru_cache(maxsize=1 << 16)
def short(value: str, prefix: str = "") -> str:
    """``prefix + value``, or ``prefix + "#" + sha256(value)`` when that is too long."""
    key = prefix + value
    if len(key) > MAX_KEY_BYTES // 4 and len(key.encode()) > MAX_KEY_BYTES:
        return prefix + "#" + hashlib.sha256(value.encode()).hexdigest()
    return key


def index_key(kind: str, value: str) -> str:
    """The statement-index key of an agent (its IFI key), activity, verb or registration."""
    if kind == "registration":
        # A UUID: never too long, and nearly every one new, so not worth remembering (they
        # would push the learners and activities out of the cache).
        return PREFIXES[kind] + value
    return short(value, PREFIXES[kind])


def analytics_key(value: str) -> str:
    """The key of an activity or learner in the analytics rollups and the activity store."""
    return short(value)
