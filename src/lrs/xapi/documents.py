"""Document resources (State, Activity Profile, Agent Profile): addresses, merges, preconditions."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from typing import Any

import orjson

from lrs import jsontext
from lrs.xapi.agents import ifi_key, parse_agent_param
from lrs.xapi.errors import BadRequest, Conflict, PreconditionFailed
from lrs.xapi.media import media_type
from lrs.xapi.timestamps import parse_timestamp
from lrs.xapi.validate import check_iri, is_uuid
from lrs.xapi.versions import Version

JSON = "application/json"
DEFAULT_CONTENT_TYPE = "application/octet-stream"
# A document id is part of a btree key, whose entries PostgreSQL caps at about 2,700 bytes;
# the cap is on bytes, so the limit is too (1,000 UTF-8 bytes: 250 to 1,000 characters).
MAX_ID_BYTES = 1000


class Kind(IntEnum):
    STATE = 1
    ACTIVITY_PROFILE = 2
    AGENT_PROFILE = 3


# Per resource: (its id parameter, whether it takes activityId, agent, registration).
SHAPES = {
    Kind.STATE: ("stateId", True, True, True),
    Kind.ACTIVITY_PROFILE: ("profileId", True, False, False),
    Kind.AGENT_PROFILE: ("profileId", False, True, False),
}


@dataclass(frozen=True)
class Address:
    """Where a document lives. ``doc_id`` None addresses every document of the owner."""

    kind: Kind
    activity_id: str = ""
    agent_key: str = ""
    registration: str = ""
    doc_id: str | None = None

    def owner_hash(self) -> bytes:
        """A fixed-size key for the owner (everything but the id), whatever the IRIs' length."""
        owner = "\x1f".join((str(int(self.kind)), self.activity_id, self.agent_key, self.registration))
        return hashlib.sha256(owner.encode()).digest()


@dataclass(frozen=True)
class DocumentRequest:
    address: Address
    since: datetime | None


def parse_params(kind: Kind, params: Mapping[str, str], method: str, version: Version) -> DocumentRequest:
    """The document a request names; 400 for a missing, unknown or malformed parameter.

    GET and DELETE may leave out the id: GET then lists ids, DELETE (State only) removes all.
    """
    id_param, has_activity, has_agent, has_registration = SHAPES[kind]
    allowed = {id_param}
    if has_activity:
        allowed.add("activityId")
    if has_agent:
        allowed.add("agent")
    if has_registration:
        allowed.add("registration")
    listing = method == "GET" and id_param not in params
    if listing:
        allowed.add("since")
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise BadRequest(f"{unknown[0]}: is not a parameter of this resource")

    activity_id = agent_key = registration = ""
    if has_activity:
        if "activityId" not in params:
            raise BadRequest("activityId: is required")
        activity_id = check_iri(params["activityId"], "activityId")
    if has_agent:
        if "agent" not in params:
            raise BadRequest("agent: is required")
        agent = parse_agent_param(params["agent"], "agent", version)
        key = ifi_key(agent)
        if key is None:
            raise BadRequest("agent: must be identified by mbox, mbox_sha1sum, openid or account")
        agent_key = key
    if "registration" in params:
        registration = params["registration"]
        if not is_uuid(registration):
            raise BadRequest(f"registration: must be a UUID, got {registration!r}")
        registration = registration.lower()
    doc_id = params.get(id_param)
    if doc_id is None and method not in ("GET", "HEAD") and not (method == "DELETE" and kind is Kind.STATE):
        raise BadRequest(f"{id_param}: is required")
    since = None
    if "since" in params:
        since = parse_timestamp(params["since"])
        if since is None:
            raise BadRequest(f"since: must be an ISO 8601 timestamp, got {params['since']!r}")
    if doc_id is not None and len(doc_id.encode()) > MAX_ID_BYTES:
        raise BadRequest(f"{id_param}: is longer than {MAX_ID_BYTES} bytes in UTF-8")
    return DocumentRequest(Address(kind, activity_id, agent_key, registration, doc_id), since)


def etag(content: bytes) -> str:
    """The strong entity tag of a document: its SHA-1, quoted."""
    return '"' + hashlib.sha1(content).hexdigest() + '"'


def is_json(content_type: str) -> bool:
    return media_type(content_type) == JSON


def check_json(content: bytes, content_type: str) -> Any:
    """The parsed document when it claims to be JSON; 400 when it is not valid JSON."""
    if not is_json(content_type):
        return None
    try:
        return jsontext.loads(content)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"document: is sent as {JSON} but is not valid JSON ({exc})") from None
    except jsontext.UnrepresentableNumber as exc:
        raise BadRequest(f"document: {exc}") from None


def merge(old: bytes, old_type: str, new: bytes, new_type: str) -> bytes:
    """POST onto an existing document: both JSON objects, merged one level deep."""
    if not (is_json(old_type) and is_json(new_type)):
        raise BadRequest(
            "document: POST can only merge JSON objects into a JSON document; "
            "use PUT to replace a document of another type"
        )
    new_value = check_json(new, new_type)
    try:
        old_value = orjson.loads(old)
    except orjson.JSONDecodeError:
        raise BadRequest("document: the stored document is not a JSON object; use PUT") from None
    if not isinstance(old_value, dict) or not isinstance(new_value, dict):
        raise BadRequest("document: POST merges JSON objects; one of them is not an object")
    old_value.update(new_value)
    return orjson.dumps(old_value)


def check_preconditions(
    method: str,
    kind: Kind,
    version: Version,
    current_etag: str | None,
    if_match: str | None,
    if_none_match: str | None,
    *,
    create_without_precondition: bool = False,
) -> None:
    """RFC 7232 If-Match / If-None-Match, and the xAPI rule that an overwrite must name one.

    412 when a precondition fails. A PUT with neither header is a 409 over an existing
    profile document (and, in 2.0, State document), and a 400 for a new profile document,
    unless ``create_without_precondition`` (a store's setting for older clients) lets it in.
    """
    if if_match is not None and not _matches(if_match, current_etag):
        raise PreconditionFailed("If-Match does not match the document's current ETag")
    if if_none_match is not None and _matches(if_none_match, current_etag):
        raise PreconditionFailed("If-None-Match matches the document's current ETag")
    if method != "PUT" or if_match is not None or if_none_match is not None:
        return
    if current_etag is not None and (kind is not Kind.STATE or version is Version.V2):
        raise Conflict(
            "the document already exists: GET it, then PUT again with If-Match "
            "set to its current ETag to overwrite it"
        )
    if current_etag is None and kind is not Kind.STATE and not create_without_precondition:
        # Clients MUST send one of the two headers when they PUT a profile document.
        raise BadRequest(
            "a PUT to a profile document needs If-Match (with the ETag) or "
            "If-None-Match: * (to create it only when absent)"
        )


def _matches(header: str, current: str | None) -> bool:
    if current is None:
        return False
    if header.strip() == "*":
        return True
    tags = [t.strip() for t in header.split(",")]
    bare = current.strip('"')
    return any(t.removeprefix("W/").strip('"') == bare for t in tags)
