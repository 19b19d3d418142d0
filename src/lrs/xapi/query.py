"""The statement query: GET /statements parameters in one typed model, and ``more`` tokens."""

from __future__ import annotations

import base64
import functools
import hashlib
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from lrs.xapi.agents import ifi_key, parse_agent_param
from lrs.xapi.errors import BadRequest
from lrs.xapi.statements import Indexed
from lrs.xapi.timestamps import parse_timestamp
from lrs.xapi.validate import check_iri, is_uuid
from lrs.xapi.versions import Version


class Format(StrEnum):
    IDS = "ids"
    EXACT = "exact"
    CANONICAL = "canonical"


QUERY_PARAMS = frozenset(
    {
        "agent",
        "verb",
        "activity",
        "registration",
        "related_activities",
        "related_agents",
        "since",
        "until",
        "limit",
        "format",
        "attachments",
        "ascending",
    }
)
SINGLE_PARAMS = frozenset({"statementId", "voidedStatementId", "format", "attachments"})


@dataclass(frozen=True)
class StatementQuery:
    """What a statement query asks for. ``agent`` is the agent's IFI key; registrations are
    lower case."""

    agent: str | None = None
    verb: str | None = None
    activity: str | None = None
    registration: str | None = None
    related_agents: bool = False
    related_activities: bool = False
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 0
    format: Format = Format.EXACT
    attachments: bool = False
    ascending: bool = False
    # Paging: continue after `after` (a seq); never show statements above `ceiling`.
    after: int | None = None
    ceiling: int | None = None
    # The WAL position the first page was read at: a read replica answering a later page
    # must have replayed it, or the page could miss statements below the ceiling.
    replayed: int | None = None

    def filters(self) -> list[tuple[Indexed, bool]]:
        """What every matching statement must be found by, and whether related matches count;
        the most selective first."""
        out: list[tuple[Indexed, bool]] = []
        if self.registration:
            out.append((("registration", self.registration), False))
        if self.agent:
            out.append((("agent", self.agent), self.related_agents))
        if self.activity:
            out.append((("activity", self.activity), self.related_activities))
        if self.verb:
            out.append((("verb", self.verb), False))
        return out


def parse_bool(value: str, name: str) -> bool:
    """``true`` or ``false``, in any case: clients written in Python send ``True``."""
    lowered = value.lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    raise BadRequest(f"{name}: must be true or false, got {value!r}")


def parse_format(value: str) -> Format:
    try:
        return Format(value)
    except ValueError:
        raise BadRequest(f"format: must be ids, exact or canonical, got {value!r}") from None


def parse_query(params: Mapping[str, str], version: Version, max_limit: int) -> StatementQuery:
    """A statement query from the request's parameters; 400 for any unknown or bad one."""
    unknown = sorted(set(params) - QUERY_PARAMS)
    if unknown:
        raise BadRequest(f"{unknown[0]}: is not a parameter of a statement query")
    fields: dict[str, Any] = {}
    if "agent" in params:
        agent = parse_agent_param(params["agent"], "agent", version)
        key = ifi_key(agent)
        if key is None:
            raise BadRequest("agent: must be an Agent or identified Group")
        fields["agent"] = key
    if "verb" in params:
        fields["verb"] = check_iri(params["verb"], "verb")
    if "activity" in params:
        fields["activity"] = check_iri(params["activity"], "activity")
    if "registration" in params:
        if not is_uuid(params["registration"]):
            raise BadRequest(f"registration: must be a UUID, got {params['registration']!r}")
        fields["registration"] = params["registration"].lower()
    for name in ("related_agents", "related_activities", "attachments", "ascending"):
        if name in params:
            fields[name] = parse_bool(params[name], name)
    for name in ("since", "until"):
        if name in params:
            instant = parse_timestamp(params[name])
            if instant is None:
                raise BadRequest(f"{name}: must be an ISO 8601 timestamp, got {params[name]!r}")
            fields[name] = instant
    if "limit" in params:
        raw = params["limit"]
        if not raw.isdigit():
            raise BadRequest(f"limit: must be a non-negative integer, got {raw!r}")
        fields["limit"] = int(raw)
    if "format" in params:
        fields["format"] = parse_format(params["format"])
    query = StatementQuery(**fields)
    return replace(query, limit=effective_limit(query.limit, max_limit))


def effective_limit(asked: int, max_limit: int) -> int:
    """0 means 'as many as the server allows'."""
    return max_limit if asked == 0 else min(asked, max_limit)


def parse_single(params: Mapping[str, str]) -> tuple[str, uuid.UUID]:
    """The (parameter, id) of a single-statement GET; 400 when other parameters come along."""
    if "statementId" in params and "voidedStatementId" in params:
        raise BadRequest("statementId and voidedStatementId cannot be used together")
    name = "statementId" if "statementId" in params else "voidedStatementId"
    extra = sorted(set(params) - SINGLE_PARAMS)
    if extra:
        raise BadRequest(f"{extra[0]}: cannot be used with {name}")
    value = params[name]
    if not is_uuid(value):
        raise BadRequest(f"{name}: must be a UUID, got {value!r}")
    return name, uuid.UUID(value)


# --- more tokens ----------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@functools.lru_cache(maxsize=4)  # one key per installation; deriving it again cost 1% of a query
def _cipher(key: bytes) -> AESGCM:
    return AESGCM(hashlib.sha256(b"lrs more token\x00" + key).digest())


_NONCE_BYTES = 12


def encode_more(query: StatementQuery, store_id: int, key: bytes) -> str:
    """An opaque token that resumes ``query``, bound to the store it was issued for.

    It is encrypted, not only signed: its positions are installation-wide sequence numbers,
    which would tell a client how much every other store writes.
    """
    # Its fields are flat; asdict's deep copy cost 3% of a one-statement query's CPU.
    state = {f.name: getattr(query, f.name) for f in fields(query)}
    state["format"] = query.format.value
    for name in ("since", "until"):
        if state[name] is not None:
            state[name] = state[name].isoformat()
    nonce = secrets.token_bytes(_NONCE_BYTES)
    sealed = _cipher(key).encrypt(nonce, orjson.dumps(state), str(store_id).encode())
    return _b64(nonce + sealed)


def decode_more(token: str, store_id: int, key: bytes) -> StatementQuery:
    try:
        raw = _unb64(token)
        body = _cipher(key).decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], str(store_id).encode())
    except (ValueError, TypeError, InvalidTag):
        raise BadRequest("more: is not a token this LRS issued for this store") from None
    state = orjson.loads(body)
    state["format"] = Format(state["format"])
    for name in ("since", "until"):
        if state[name] is not None:
            state[name] = datetime.fromisoformat(state[name])
    return StatementQuery(**state)
