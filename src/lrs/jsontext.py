"""JSON encoding used everywhere: orjson, compact, UTF-8."""

from __future__ import annotations

import json
import math
from typing import Any

import orjson


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def dumpb(value: Any) -> bytes:
    return orjson.dumps(value)


# Numbers with 19+ digits (integers near or past 64 bits) and 3-digit exponents (overflowing
# floats) are rare; only bodies that have one pay for the exact check below. Candidates are
# found with plain byte searches over the body with every digit made "0" (a regular
# expression costs several times more on a batch); one counts only if it is a number token,
# i.e. its digits start the body or follow `:`, `[`, `,` or whitespace, so that hex ids such
# as "51e8722" in a UUID (in every statement) are not taken for exponents.
_SHAPES = bytes.maketrans(b"123456789E", b"000000000e")
_CANDIDATES = (b"0" * 19, b"e000", b"e+000", b"e-000")
_NUMBER_CHARS = frozenset(b"0123456789.-+")
_BEFORE_NUMBER = frozenset(b":[, \t\r\n")
_INT64 = range(-(2**63), 2**63)


def _has_suspect_number(body: bytes) -> bool:
    shaped = body.translate(_SHAPES)
    for candidate in _CANDIDATES:
        at = shaped.find(candidate)
        while at != -1:
            start = at
            while start > 0 and body[start - 1] in _NUMBER_CHARS:
                start -= 1
            if start == 0 or body[start - 1] in _BEFORE_NUMBER:
                return True
            at = shaped.find(candidate, at + 1)
    return False


class UnrepresentableNumber(ValueError):
    """A JSON number that cannot be kept exactly (orjson would turn it into a float)."""


def loads(body: bytes) -> Any:
    """Parse JSON, refusing numbers it cannot keep: integers beyond 64 bits, infinities."""
    value = orjson.loads(body)
    if _has_suspect_number(body):
        _check_numbers(json.loads(body))
    return value


def _check_numbers(value: Any) -> None:
    if isinstance(value, bool):
        return
    if isinstance(value, int) and value not in _INT64:
        raise UnrepresentableNumber(f"the number {value} is beyond the 64-bit integer range")
    if isinstance(value, float) and not math.isfinite(value):
        raise UnrepresentableNumber("a number is too large to represent")
    if isinstance(value, dict):
        for item in value.values():
            _check_numbers(item)
    elif isinstance(value, list):
        for item in value:
            _check_numbers(item)
