"""Statement validation: every rule of the Data part of the spec, per version.

Works on the parsed JSON (dicts and lists) so that the statement is stored and served exactly
as sent; each failure names the property by its path, e.g. ``statements[2].actor.mbox``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import orjson

from lrs.xapi.attachments import SIGNATURE_CONTENT_TYPE, SIGNATURE_USAGE
from lrs.xapi.durations import is_duration
from lrs.xapi.errors import BadRequest
from lrs.xapi.langtags import is_language_tag
from lrs.xapi.media import media_type
from lrs.xapi.timestamps import parse_timestamp
from lrs.xapi.versions import Version, statement_version_ok

VOIDED_VERB = "http://adlnet.gov/expapi/verbs/voided"

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")
_IRI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:[^\s<>\"{}|\\^`]+\Z")
_MAILTO = re.compile(r"^mailto:[^@\s]+@[^@\s]+\Z")
_SHA1 = re.compile(r"^[0-9a-fA-F]{40}\Z")
_SHA2 = re.compile(r"^[0-9a-fA-F]{56,128}\Z")
# type/subtype with optional parameters; only characters a header can carry, since the value
# becomes the Content-Type of a multipart part (a CR/LF here would end that part's headers).
_MEDIA_TYPE = re.compile(r"[\w!#$&^.+\-]+/[\w!#$&^.+\-]+(?:[ \t]*;[\t\x20-\x7e]*)?", re.ASCII)
_INTERACTION_TYPES = frozenset(
    {
        "true-false",
        "choice",
        "fill-in",
        "long-fill-in",
        "matching",
        "performance",
        "sequencing",
        "likert",
        "numeric",
        "other",
    }
)
# Which interaction component lists each interaction type may carry.
_COMPONENT_LISTS = {
    "choices": frozenset({"choice", "sequencing"}),
    "scale": frozenset({"likert"}),
    "source": frozenset({"matching"}),
    "target": frozenset({"matching"}),
    "steps": frozenset({"performance"}),
}
_IFIS = ("mbox", "mbox_sha1sum", "openid", "account")

_STATEMENT_KEYS = frozenset(
    {
        "id",
        "actor",
        "verb",
        "object",
        "result",
        "context",
        "timestamp",
        "stored",
        "authority",
        "version",
        "attachments",
    }
)
_SUBSTATEMENT_KEYS = frozenset(
    {
        "objectType",
        "actor",
        "verb",
        "object",
        "result",
        "context",
        "timestamp",
        "attachments",
    }
)
_AGENT_KEYS = frozenset({"objectType", "name", *_IFIS})
_GROUP_KEYS = frozenset({"objectType", "name", "member", *_IFIS})
_ACTIVITY_KEYS = frozenset({"objectType", "id", "definition"})
_DEFINITION_KEYS = frozenset(
    {
        "name",
        "description",
        "type",
        "moreInfo",
        "extensions",
        "interactionType",
        "correctResponsesPattern",
        *_COMPONENT_LISTS,
    }
)
_RESULT_KEYS = frozenset({"score", "success", "completion", "response", "duration", "extensions"})
_SCORE_KEYS = frozenset({"scaled", "raw", "min", "max"})
_CONTEXT_KEYS_V1 = frozenset(
    {
        "registration",
        "instructor",
        "team",
        "contextActivities",
        "revision",
        "platform",
        "language",
        "statement",
        "extensions",
    }
)
_CONTEXT_KEYS_V2 = _CONTEXT_KEYS_V1 | {"contextAgents", "contextGroups"}
_CONTEXT_ACTIVITY_KEYS = frozenset({"parent", "grouping", "category", "other"})
_ATTACHMENT_KEYS = frozenset(
    {
        "usageType",
        "display",
        "description",
        "contentType",
        "length",
        "sha2",
        "fileUrl",
    }
)


def fail(path: str, problem: str) -> BadRequest:
    return BadRequest(f"{path}: {problem}")


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def is_uuid(value: Any) -> bool:
    return isinstance(value, str) and _UUID.match(value) is not None


def is_iri(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    return (_short_iri if len(value) <= 256 else _short_iri.__wrapped__)(value)


# Verbs, activities, homepages and extension keys recur in statement after statement; only
# short ones are remembered, so that a client cannot fill the cache with huge strings.
@lru_cache(maxsize=1 << 14)
def _short_iri(value: str) -> bool:
    return _IRI.match(value) is not None


def check_iri(value: str, name: str) -> str:
    """``value``, or a 400 naming the parameter ``name`` when it is not an IRI."""
    if not is_iri(value):
        raise BadRequest(f"{name}: must be an IRI, got {value!r}")
    return value


# Verbs, activities and authorities found valid, by their JSON, per validator. The same few
# recur in statement after statement (a course's activity with its whole definition, the
# importing credential's authority); finding one here costs a tenth of checking it again.
# Only valid ones are kept, and at most this many: then the memory starts again.
_REMEMBERED = 4096
_REMEMBERED_BYTES = 2048  # larger objects are checked each time


def _memory_key(kind: str, value: Any) -> tuple[str, bytes] | None:
    """What a valid ``value`` is remembered by; None for one that is not kept (not an object,
    too large, or holding an integer beyond 64 bits, which orjson does not write)."""
    if not isinstance(value, dict):
        return None
    try:
        text = orjson.dumps(value)
    except orjson.JSONEncodeError:
        return None
    return None if len(text) > _REMEMBERED_BYTES else (kind, text)


class StatementValidator:
    """Validates statements for one xAPI version. Raises :class:`BadRequest` on the first fault."""

    def __init__(self, version: Version) -> None:
        self.version = version
        self._context_keys = _CONTEXT_KEYS_V2 if version is Version.V2 else _CONTEXT_KEYS_V1
        self._valid: dict[tuple[str, bytes], None] = {}

    def _remembered(self, kind: str, value: Any, path: str, check: Callable[[Any, str], None]) -> None:
        """``check(value, path)``, unless ``value`` was found valid as a ``kind`` before."""
        key = _memory_key(kind, value)
        if key is not None and key in self._valid:
            return
        check(value, path)
        if key is not None:
            if len(self._valid) >= _REMEMBERED:
                self._valid.clear()
            self._valid[key] = None

    # --- primitives -------------------------------------------------------------------------

    def _object(self, value: Any, path: str, allowed: frozenset[str]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise fail(path, f"must be an object, not {_type_name(value)}")
        # Almost every object is fine: two checks in C, and the walk only to name a fault.
        if value.keys() <= allowed and None not in value.values():
            return value
        for key, item in value.items():
            if key not in allowed:
                raise fail(f"{path}.{key}", "is not a property allowed here (names are case-sensitive)")
            if item is None:
                raise fail(f"{path}.{key}", "must not be null")
        return value

    def _string(self, value: Any, path: str) -> str:
        if not isinstance(value, str):
            raise fail(path, f"must be a string, not {_type_name(value)}")
        return value

    def _bool(self, value: Any, path: str) -> None:
        if not isinstance(value, bool):
            raise fail(path, f"must be a boolean, not {_type_name(value)}")

    def _number(self, value: Any, path: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise fail(path, f"must be a number, not {_type_name(value)}")
        return float(value)

    def _iri(self, value: Any, path: str) -> None:
        if not is_iri(value):
            raise fail(path, f"must be an IRI with a scheme, got {value!r}")

    def _uuid(self, value: Any, path: str) -> None:
        if not is_uuid(value):
            raise fail(path, f"must be a UUID in its canonical string form, got {value!r}")

    def _timestamp(self, value: Any, path: str) -> None:
        if not isinstance(value, str) or parse_timestamp(value) is None:
            raise fail(path, f"must be an ISO 8601 timestamp, got {value!r}")

    def _language_map(self, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise fail(path, f"must be a language map (an object), not {_type_name(value)}")
        for tag, text in value.items():
            if not _good_tag(tag):
                raise fail(f"{path}", f"key {tag!r} is not an RFC 5646 language tag")
            if not isinstance(text, str):
                raise fail(f"{path}.{tag}", f"must be a string, not {_type_name(text)}")

    def _extensions(self, value: Any, path: str) -> None:
        if not isinstance(value, dict):
            raise fail(path, f"must be an object, not {_type_name(value)}")
        for key in value:
            if not is_iri(key):
                raise fail(path, f"key {key!r} is not an IRI")

    def _array(self, value: Any, path: str) -> list[Any]:
        if not isinstance(value, list):
            raise fail(path, f"must be an array, not {_type_name(value)}")
        for index, item in enumerate(value):
            if item is None:
                raise fail(f"{path}[{index}]", "must not be null")
        return value

    # --- agents and groups ------------------------------------------------------------------

    def _ifis(self, obj: dict[str, Any], path: str) -> int:
        count = 0
        if "mbox" in obj:
            count += 1
            mbox = self._string(obj["mbox"], f"{path}.mbox")
            if not _MAILTO.match(mbox):
                raise fail(f"{path}.mbox", f"must be a mailto IRI with an address, got {mbox!r}")
        if "mbox_sha1sum" in obj:
            count += 1
            sha1 = self._string(obj["mbox_sha1sum"], f"{path}.mbox_sha1sum")
            if not _SHA1.match(sha1):
                raise fail(f"{path}.mbox_sha1sum", "must be 40 hexadecimal digits")
        if "openid" in obj:
            count += 1
            self._iri(obj["openid"], f"{path}.openid")
        if "account" in obj:
            count += 1
            account = self._object(obj["account"], f"{path}.account", frozenset({"homePage", "name"}))
            if "homePage" not in account:
                raise fail(f"{path}.account.homePage", "is required")
            if "name" not in account:
                raise fail(f"{path}.account.name", "is required")
            self._iri(account["homePage"], f"{path}.account.homePage")
            self._string(account["name"], f"{path}.account.name")
        return count

    def agent(self, value: Any, path: str) -> None:
        obj = self._object(value, path, _AGENT_KEYS)
        if "objectType" in obj and obj["objectType"] != "Agent":
            raise fail(f"{path}.objectType", f"must be 'Agent', got {obj['objectType']!r}")
        if "name" in obj:
            self._string(obj["name"], f"{path}.name")
        if self._ifis(obj, path) != 1:
            raise fail(path, "an Agent must have exactly one of mbox, mbox_sha1sum, openid, account")

    def group(self, value: Any, path: str) -> None:
        obj = self._object(value, path, _GROUP_KEYS)
        if obj.get("objectType") != "Group":
            raise fail(f"{path}.objectType", "must be 'Group'")
        if "name" in obj:
            self._string(obj["name"], f"{path}.name")
        ifis = self._ifis(obj, path)
        if ifis > 1:
            raise fail(path, "a Group must not have more than one of mbox, mbox_sha1sum, openid, account")
        if "member" in obj:
            members = self._array(obj["member"], f"{path}.member")
            for index, member in enumerate(members):
                member_path = f"{path}.member[{index}]"
                if isinstance(member, dict) and member.get("objectType") == "Group":
                    raise fail(f"{member_path}.objectType", "a Group's members must be Agents")
                self.agent(member, member_path)
        if ifis == 0 and not obj.get("member"):
            raise fail(f"{path}.member", "an anonymous Group must list its members")

    def actor(self, value: Any, path: str) -> None:
        if isinstance(value, dict) and value.get("objectType") == "Group":
            self.group(value, path)
        else:
            self.agent(value, path)

    # --- verb, object -----------------------------------------------------------------------

    def verb(self, value: Any, path: str) -> None:
        self._remembered("verb", value, path, self._verb)

    def _verb(self, value: Any, path: str) -> None:
        obj = self._object(value, path, frozenset({"id", "display"}))
        if "id" not in obj:
            raise fail(f"{path}.id", "is required")
        self._iri(obj["id"], f"{path}.id")
        if "display" in obj:
            self._language_map(obj["display"], f"{path}.display")

    def activity(self, value: Any, path: str) -> None:
        self._remembered("activity", value, path, self._activity)

    def _activity(self, value: Any, path: str) -> None:
        obj = self._object(value, path, _ACTIVITY_KEYS)
        if "objectType" in obj and obj["objectType"] != "Activity":
            raise fail(f"{path}.objectType", f"must be 'Activity', got {obj['objectType']!r}")
        if "id" not in obj:
            raise fail(f"{path}.id", "is required")
        self._iri(obj["id"], f"{path}.id")
        if "definition" in obj:
            self.definition(obj["definition"], f"{path}.definition")

    def definition(self, value: Any, path: str) -> None:
        obj = self._object(value, path, _DEFINITION_KEYS)
        for key in ("name", "description"):
            if key in obj:
                self._language_map(obj[key], f"{path}.{key}")
        if "type" in obj:
            self._iri(obj["type"], f"{path}.type")
        if "moreInfo" in obj:
            self._iri(obj["moreInfo"], f"{path}.moreInfo")
        if "extensions" in obj:
            self._extensions(obj["extensions"], f"{path}.extensions")
        interaction = obj.get("interactionType")
        if interaction is not None:
            self._string(interaction, f"{path}.interactionType")
            if interaction not in _INTERACTION_TYPES:
                raise fail(f"{path}.interactionType", f"{interaction!r} is not an interaction type")
        if "correctResponsesPattern" in obj:
            if interaction is None:
                raise fail(f"{path}.correctResponsesPattern", "needs an interactionType")
            patterns = self._array(obj["correctResponsesPattern"], f"{path}.correctResponsesPattern")
            for index, pattern in enumerate(patterns):
                self._string(pattern, f"{path}.correctResponsesPattern[{index}]")
        for key, types in _COMPONENT_LISTS.items():
            if key not in obj:
                continue
            if interaction not in types:
                raise fail(f"{path}.{key}", f"is not allowed with interactionType {interaction!r}")
            self._components(obj[key], f"{path}.{key}")

    def _components(self, value: Any, path: str) -> None:
        components = self._array(value, path)
        seen: set[str] = set()
        for index, item in enumerate(components):
            item_path = f"{path}[{index}]"
            component = self._object(item, item_path, frozenset({"id", "description"}))
            if "id" not in component:
                raise fail(f"{item_path}.id", "is required")
            ident = self._string(component["id"], f"{item_path}.id")
            if ident in seen:
                raise fail(f"{item_path}.id", f"{ident!r} is used twice in this list")
            seen.add(ident)
            if "description" in component:
                self._language_map(component["description"], f"{item_path}.description")

    def statement_ref(self, value: Any, path: str) -> None:
        obj = self._object(value, path, frozenset({"objectType", "id"}))
        if obj.get("objectType") != "StatementRef":
            raise fail(f"{path}.objectType", "must be 'StatementRef'")
        if "id" not in obj:
            raise fail(f"{path}.id", "is required")
        self._uuid(obj["id"], f"{path}.id")

    def object(self, value: Any, path: str, *, in_substatement: bool) -> str:
        """Validate a statement's object; return its objectType."""
        if not isinstance(value, dict):
            raise fail(path, f"must be an object, not {_type_name(value)}")
        kind = value.get("objectType", "Activity")
        if kind == "Activity":
            self.activity(value, path)
        elif kind == "Agent":
            self.agent(value, path)
        elif kind == "Group":
            self.group(value, path)
        elif kind == "StatementRef":
            self.statement_ref(value, path)
        elif kind == "SubStatement":
            if in_substatement:
                raise fail(f"{path}.objectType", "a SubStatement cannot contain a SubStatement")
            self.substatement(value, path)
        else:
            raise fail(f"{path}.objectType", f"{kind!r} is not an object type")
        return str(kind)

    # --- result, context, attachments -------------------------------------------------------

    def result(self, value: Any, path: str) -> None:
        obj = self._object(value, path, _RESULT_KEYS)
        if "score" in obj:
            self.score(obj["score"], f"{path}.score")
        for key in ("success", "completion"):
            if key in obj:
                self._bool(obj[key], f"{path}.{key}")
        if "response" in obj:
            self._string(obj["response"], f"{path}.response")
        if "duration" in obj:
            duration = self._string(obj["duration"], f"{path}.duration")
            if not is_duration(duration):
                raise fail(f"{path}.duration", f"must be an ISO 8601 duration, got {duration!r}")
        if "extensions" in obj:
            self._extensions(obj["extensions"], f"{path}.extensions")

    def score(self, value: Any, path: str) -> None:
        obj = self._object(value, path, _SCORE_KEYS)
        numbers = {key: self._number(obj[key], f"{path}.{key}") for key in _SCORE_KEYS if key in obj}
        scaled = numbers.get("scaled")
        if scaled is not None and not -1 <= scaled <= 1:
            raise fail(f"{path}.scaled", f"must be between -1 and 1, got {obj['scaled']}")
        low, high, raw = numbers.get("min"), numbers.get("max"), numbers.get("raw")
        if low is not None and high is not None and not low < high:
            raise fail(f"{path}.min", "must be less than max")
        if raw is not None and low is not None and raw < low:
            raise fail(f"{path}.raw", "must not be less than min")
        if raw is not None and high is not None and raw > high:
            raise fail(f"{path}.raw", "must not be greater than max")

    def context(self, value: Any, path: str, object_type: str) -> None:
        obj = self._object(value, path, self._context_keys)
        if "registration" in obj:
            self._uuid(obj["registration"], f"{path}.registration")
        if "instructor" in obj:
            self.actor(obj["instructor"], f"{path}.instructor")
        if "team" in obj:
            self.group(obj["team"], f"{path}.team")
        if "contextActivities" in obj:
            self.context_activities(obj["contextActivities"], f"{path}.contextActivities")
        for key in ("revision", "platform"):
            if key in obj:
                self._string(obj[key], f"{path}.{key}")
                if object_type != "Activity":
                    raise fail(f"{path}.{key}", "is only allowed when the object is an Activity")
        if "language" in obj:
            language = self._string(obj["language"], f"{path}.language")
            if not _good_tag(language):
                raise fail(f"{path}.language", f"{language!r} is not an RFC 5646 language tag")
        if "statement" in obj:
            self.statement_ref(obj["statement"], f"{path}.statement")
        if "extensions" in obj:
            self._extensions(obj["extensions"], f"{path}.extensions")
        if "contextAgents" in obj:
            self._context_members(
                obj["contextAgents"], f"{path}.contextAgents", "contextAgent", "agent", self.agent
            )
        if "contextGroups" in obj:
            self._context_members(
                obj["contextGroups"], f"{path}.contextGroups", "contextGroup", "group", self.group
            )

    def _context_members(
        self,
        value: Any,
        path: str,
        object_type: str,
        member_key: str,
        check: Callable[[Any, str], None],
    ) -> None:
        items = self._array(value, path)
        for index, item in enumerate(items):
            item_path = f"{path}[{index}]"
            obj = self._object(item, item_path, frozenset({"objectType", member_key, "relevantTypes"}))
            if obj.get("objectType") != object_type:
                raise fail(f"{item_path}.objectType", f"must be {object_type!r}")
            if member_key not in obj:
                raise fail(f"{item_path}.{member_key}", "is required")
            check(obj[member_key], f"{item_path}.{member_key}")
            if "relevantTypes" in obj:
                types = self._array(obj["relevantTypes"], f"{item_path}.relevantTypes")
                if not types:
                    raise fail(f"{item_path}.relevantTypes", "must not be empty")
                for position, iri in enumerate(types):
                    self._iri(iri, f"{item_path}.relevantTypes[{position}]")

    def context_activities(self, value: Any, path: str) -> None:
        obj = self._object(value, path, _CONTEXT_ACTIVITY_KEYS)
        for key, item in obj.items():
            if isinstance(item, list):
                for index, activity in enumerate(self._array(item, f"{path}.{key}")):
                    self.activity(activity, f"{path}.{key}[{index}]")
            else:
                self.activity(item, f"{path}.{key}")

    def attachments(self, value: Any, path: str) -> None:
        for index, item in enumerate(self._array(value, path)):
            item_path = f"{path}[{index}]"
            obj = self._object(item, item_path, _ATTACHMENT_KEYS)
            for key in ("usageType", "display", "contentType", "length", "sha2"):
                if key not in obj:
                    raise fail(f"{item_path}.{key}", "is required")
            self._iri(obj["usageType"], f"{item_path}.usageType")
            self._language_map(obj["display"], f"{item_path}.display")
            if "description" in obj:
                self._language_map(obj["description"], f"{item_path}.description")
            content_type = self._string(obj["contentType"], f"{item_path}.contentType")
            if not _MEDIA_TYPE.fullmatch(content_type):
                raise fail(f"{item_path}.contentType", f"{content_type!r} is not a media type")
            if obj["usageType"] == SIGNATURE_USAGE and media_type(content_type) != SIGNATURE_CONTENT_TYPE:
                raise fail(
                    f"{item_path}.contentType", f"a signature attachment must be {SIGNATURE_CONTENT_TYPE}"
                )
            length = obj["length"]
            if isinstance(length, bool) or not isinstance(length, int) or length < 0:
                raise fail(f"{item_path}.length", "must be a non-negative integer")
            sha2 = self._string(obj["sha2"], f"{item_path}.sha2")
            if not _SHA2.match(sha2):
                raise fail(f"{item_path}.sha2", "must be a hexadecimal SHA-2 digest")
            if "fileUrl" in obj:
                self._iri(obj["fileUrl"], f"{item_path}.fileUrl")

    # --- statements -------------------------------------------------------------------------

    def authority(self, value: Any, path: str) -> None:
        self._remembered("authority", value, path, self._authority)

    def _authority(self, value: Any, path: str) -> None:
        if isinstance(value, dict) and value.get("objectType") == "Group":
            self.group(value, path)
            if any(key in value for key in _IFIS):
                raise fail(path, "an authority Group must be anonymous")
            if len(value.get("member", [])) != 2:
                raise fail(f"{path}.member", "an authority Group must have exactly two members")
        else:
            self.agent(value, path)

    def substatement(self, value: Any, path: str) -> None:
        obj = self._object(value, path, _SUBSTATEMENT_KEYS)
        self._core(obj, path, in_substatement=True)

    def _core(self, obj: dict[str, Any], path: str, *, in_substatement: bool) -> None:
        for key in ("actor", "verb", "object"):
            if key not in obj:
                raise fail(f"{path}.{key}", "is required")
        self.actor(obj["actor"], f"{path}.actor")
        self.verb(obj["verb"], f"{path}.verb")
        object_type = self.object(obj["object"], f"{path}.object", in_substatement=in_substatement)
        if "result" in obj:
            self.result(obj["result"], f"{path}.result")
        if "context" in obj:
            self.context(obj["context"], f"{path}.context", object_type)
        if "timestamp" in obj:
            self._timestamp(obj["timestamp"], f"{path}.timestamp")
        if "attachments" in obj:
            self.attachments(obj["attachments"], f"{path}.attachments")

    def statement(self, value: Any, path: str = "statement") -> None:
        obj = self._object(value, path, _STATEMENT_KEYS)
        if "id" in obj:
            self._uuid(obj["id"], f"{path}.id")
        self._core(obj, path, in_substatement=False)
        if "stored" in obj:
            self._timestamp(obj["stored"], f"{path}.stored")
        if "authority" in obj:
            self.authority(obj["authority"], f"{path}.authority")
        if "version" in obj:
            version = self._string(obj["version"], f"{path}.version")
            if not statement_version_ok(version, self.version):
                raise fail(f"{path}.version", f"{version!r} is not a version this LRS accepts here")
        verb_id = obj["verb"]["id"]
        if verb_id == VOIDED_VERB and obj["object"].get("objectType") != "StatementRef":
            raise fail(f"{path}.object", "a voiding statement's object must be a StatementRef")


def _good_tag(tag: str) -> bool:
    return (_short_good_tag if len(tag) <= 64 else _short_good_tag.__wrapped__)(tag)


# The same few tags ("nb", "en-US") are in nearly every statement.
@lru_cache(maxsize=1024)
def _short_good_tag(tag: str) -> bool:
    return is_language_tag(tag) and not _repeated_singleton(tag)


def _repeated_singleton(tag: str) -> bool:
    """RFC 5646 forbids two extensions with the same singleton (``zh-z-aaa-z-bbb``)."""
    singletons = []
    for part in tag.lower().split("-")[1:]:
        if part == "x":
            break
        if len(part) == 1:
            singletons.append(part)
    return len(singletons) != len(set(singletons))


_VALIDATORS = {version: StatementValidator(version) for version in Version}


def validator_for(version: Version) -> StatementValidator:
    return _VALIDATORS[version]
