"""ISO 8601 durations (``result.duration``)."""

from __future__ import annotations

import re

# ISO 8601 allows weeks only on their own ("P4W", never "P4W1D").
_DURATION = re.compile(
    r"^P(?!\Z)(?:(?P<w>\d+(?:[.,]\d+)?)W\Z|"
    r"(?:(?P<y>\d+(?:[.,]\d+)?)Y)?(?:(?P<mo>\d+(?:[.,]\d+)?)M)?"
    r"(?:(?P<d>\d+(?:[.,]\d+)?)D)?"
    r"(?:T(?=\d)(?:(?P<h>\d+(?:[.,]\d+)?)H)?(?:(?P<mi>\d+(?:[.,]\d+)?)M)?"
    r"(?:(?P<s>\d+(?:[.,]\d+)?)S)?)?\Z)",
    re.ASCII,
)
_SECONDS = {
    "y": 365 * 86400.0,
    "mo": 30 * 86400.0,
    "w": 7 * 86400.0,
    "d": 86400.0,
    "h": 3600.0,
    "mi": 60.0,
    "s": 1.0,
}


def is_duration(value: str) -> bool:
    """Whether ``value`` is an ISO 8601 duration (what parse_duration reads, without adding
    it up: a third of the cost, for the validator)."""
    return _DURATION.match(value) is not None


def parse_duration(value: str) -> float | None:
    """Seconds in an ISO 8601 duration, or None when it is not one.

    Years and months have no fixed length; they count as 365 and 30 days.
    """
    m = _DURATION.match(value)
    if m is None:
        return None
    total = 0.0
    for name, factor in _SECONDS.items():
        part = m.group(name)
        if part is not None:
            total += float(part.replace(",", ".")) * factor
    return total
