"""JSON encoding used everywhere: orjson, compact, UTF-8."""

from __future__ import annotations

import re
from typing import Any

import orjson


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def dumpb(value: Any) -> bytes:
    return orjson.dumps(value)


# The NUL character as JSON text writes it: \u0000 after an even number of backslashes (after
# an odd number, the backslash before the "u" is itself an escaped character).
_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def holds_nul(text: str) -> bool:
    """Whether a JSON text holds the NUL character, which no PostgreSQL text can."""
    return "\\u0000" in text and _NUL.search(text) is not None


# Numbers with 19+ digits (integers near or past 64 bits) are rare; only bodies that have one
# pay for the exact check below. Candidates are found with a plain byte search over the body
# with every digit made "0" (a regular expression costs several times more on a batch); one
# counts only if its digits start the body or follow `:`, `[`, `,` or whitespace, so that
# digit runs inside strings (a long id) mostly do not trigger it.
_SHAPES = bytes.maketrans(b"123456789", b"000000000")
_CANDIDATE = b"0" * 19
_NUMBER_CHARS = frozenset(b"0123456789.-+")
_BEFORE_NUMBER = frozenset(b":[, \t\r\n")
_INT64 = range(-(2**63), 2**63)


def _has_suspect_number(body: bytes) -> bool:
    shaped = body.translate(_SHAPES)
    at = shaped.find(_CANDIDATE)
    while at != -1:
        start = at
        while start > 0 and body[start - 1] in _NUMBER_CHARS:
            start -= 1
        if start == 0 or body[start - 1] in _BEFORE_NUMBER:
            return True
        at = shaped.find(_CANDIDATE, at + 1)
    return False


class UnrepresentableNumber(ValueError):
    """A JSON number that cannot be kept exactly (orjson would turn it into a float)."""


# In valid JSON, digits outside strings belong to number tokens; strings are matched first so
# that digits inside them are passed over. A scan, not a parse: nesting depth costs nothing.
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?')


def loads(body: bytes) -> Any:
    """Parse JSON, refusing numbers it cannot keep: integers beyond 64 bits, infinities.

    orjson refuses infinities itself but reads an integer beyond 64 bits as a float.
    """
    value = orjson.loads(body)
    if _has_suspect_number(body):
        _check_integers(body)
    return value


def _check_integers(body: bytes) -> None:
    for match in _TOKENS.finditer(body):
        token = match.group()
        if token[0] == 0x22 or any(c in token for c in b".eE"):  # a string, or a float
            continue
        if int(token) not in _INT64:
            raise UnrepresentableNumber(f"the number {token.decode()} is beyond the 64-bit integer range")
