"""How values become index keys: namespaced by what they identify, hashed when too long.

A statement is indexed under the agents, activities, verb and registration a query can
filter by (``xapi.statements`` says which); the statement index keeps one row per
(key, statement). There a key is 128 bits (a ``uuid`` column): a registration is its own
UUID, anything else the first half of a SHA-256 of its text key. Analytics rollups and
canonical activities key their rows by the text key itself.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

# What a key identifies, as its prefix in the text key.
PREFIXES = {"agent": "a:", "activity": "i:", "verb": "v:", "registration": "r:"}

# Keys longer than this many UTF-8 bytes are hashed. PostgreSQL caps a btree entry at about
# 2,700 bytes and some keys are made of two such values (activity and learner), so the
# limit is on bytes, not characters: 512 characters outside the BMP are 2,048 bytes.
MAX_KEY_BYTES = 512


def _shortened(value: str, prefix: str) -> str:
    key = prefix + value
    if len(key) > MAX_KEY_BYTES // 4 and len(key.encode()) > MAX_KEY_BYTES:
        return prefix + "#" + hashlib.sha256(value.encode()).hexdigest()
    return key


# Cached like analytics_key: a batch of a thousand statements names a few hundred keys.
@lru_cache(maxsize=1 << 16)
def _hashed(value: str, prefix: str) -> str:
    return hashlib.sha256(_shortened(value, prefix).encode()).hexdigest()[:32]


def index_key(kind: str, value: str) -> str:
    """The statement-index key of an agent (its IFI key), activity, verb or registration, as
    32 hex digits (PostgreSQL takes them for a ``uuid``).

    Sixteen bytes instead of a text of forty on average: the index's rows cost PostgreSQL
    about a third less to write and take a third less room, and no table maps texts to ids,
    so writing needs no lookup and forgetting a learner leaves no mapping behind. Two texts
    sharing a key is as likely as two statements sharing a random UUID.
    """
    if kind == "registration":
        # Already a UUID (lower case), and nearly every one new: not worth remembering (they
        # would push the learners and activities out of the cache).
        return value.replace("-", "")
    return _hashed(value, PREFIXES[kind])


# The same learners, activities and verbs recur in every batch: a fold asks for ~20 keys a
# statement, and the cache makes most of those a lookup.
@lru_cache(maxsize=1 << 16)
def analytics_key(value: str) -> str:
    """The key of an activity or learner in the analytics rollups and the activity store:
    the value, or ``"#" + sha256(value)`` when it is too long."""
    return _shortened(value, "")
