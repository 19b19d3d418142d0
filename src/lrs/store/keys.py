"""How values become index keys: namespaced by what they identify, hashed when too long.

A statement is indexed under the agents, activities, verb and registration a query can
filter by (``xapi.statements`` says which); the statement index keeps one row per
(key, statement). There a key is 128 bits (a ``uuid`` column): a registration is its own
UUID, anything else the first half of a SHA-256 of its text key. Analytics rollups, target
groups and canonical activities key their rows by 128 bits as well (``analytics_key``).
"""

from __future__ import annotations

import hashlib
import uuid
from functools import lru_cache

from asyncpg.pgproto.pgproto import UUID as PgUUID

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


def _digest(value: str, prefix: str) -> bytes:
    """The 16 bytes a value is keyed by: the first half of the SHA-256 of its text key."""
    return hashlib.sha256(_shortened(value, prefix).encode()).digest()[:16]


# Cached like analytics_key: a batch of a thousand statements names a few hundred keys.
@lru_cache(maxsize=1 << 16)
def _hashed(value: str, prefix: str) -> str:
    return _digest(value, prefix).hex()


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


# What the analytics rollups key their store-wide rows by, in place of an activity.
OVERALL_KEY: uuid.UUID = PgUUID(bytes(16))


# The same learners, activities and verbs recur in every batch: a fold asks for ~20 keys a
# statement, and the cache makes most of those a lookup.
@lru_cache(maxsize=1 << 16)
def analytics_key(value: str) -> uuid.UUID:
    """The key of an activity or learner in the analytics rollups, target groups and the
    activity store: the first 16 bytes of the SHA-256 of the value (of ``"#" +`` its own
    SHA-256 when it is over MAX_KEY_BYTES, as the text keys before migration 0023 were);
    OVERALL_KEY for ``""``, the store as a whole.

    The rollups' rows are mostly their keys: 16 bytes each instead of a text of ~50 made
    them 29% smaller and PostgreSQL's part of the fold 13 to 16% cheaper
    (bench/results/fold-keys-100k.md). Every row that must name its activity or learner
    keeps the text beside the key.
    """
    if not value:
        return OVERALL_KEY
    # asyncpg's own UUID, a uuid.UUID made in C: it is sent without conversion and hashes,
    # compares and sorts in C, where the standard one takes 2 µs to make and sorts in Python.
    key: uuid.UUID = PgUUID(_digest(value, ""))
    return key
