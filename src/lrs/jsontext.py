"""JSON encoding used everywhere: orjson, compact, UTF-8."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def dumpb(value: Any) -> bytes:
    return orjson.dumps(value)


# Numbers with 19+ digits (integers near or past 64 bits) and 3-digit exponents (overflowing
# floats) are rare; only bodies that have one pay for the exact check below. A number token
# starts the body or follows `:`, `[`, `,` or whitespace, which keeps hex ids such as
# "51e8722" in a UUID (inside every statement) from looking like one.
_SUSPECT = re.compile(rb"(?:^|[:\[,\s])-?(?:\d{19,}|\d+(?:\.\d+)?[eE][+-]?\d{3,})")
_INT64 = range(-(2**63), 2**63)


class UnrepresentableNumber(ValueError):
    """A JSON number that cannot be kept exactly (orjson would turn it into a float)."""


def loads(body: bytes) -> Any:
    """Parse JSON, refusing numbers it cannot keep: integers beyond 64 bits, infinities."""
    value = orjson.loads(body)
    if _SUSPECT.search(body):
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
