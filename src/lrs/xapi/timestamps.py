"""ISO 8601 / RFC 3339 timestamps as xAPI uses them."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

_EXTENDED = re.compile(
    r"^(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})[Tt](?P<h>\d{2}):(?P<mi>\d{2})"
    r"(?::(?P<s>\d{2})(?:[.,](?P<f>\d+))?)?"
    r"(?P<tz>[Zz]|[+-]\d{2}(?::?\d{2})?)?\Z",
    re.ASCII,
)
_BASIC = re.compile(
    r"^(?P<y>\d{4})(?P<mo>\d{2})(?P<d>\d{2})[Tt](?P<h>\d{2})(?P<mi>\d{2})"
    r"(?:(?P<s>\d{2})(?:[.,](?P<f>\d+))?)?"
    r"(?P<tz>[Zz]|[+-]\d{2}(?:\d{2})?)?\Z",
    re.ASCII,
)
# The form nearly every client sends (and this LRS writes); Python reads it alone, fast.
_COMMON = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?(?:Z|\+00:00)")
# ISO 8601 forbids a negative zero offset ("-00", "-0000", "-00:00"): it means "unknown".
_NEGATIVE_ZERO = re.compile(r"-00(:?00)?\Z")


def parse_timestamp(value: str) -> datetime | None:
    """The instant a timestamp names (timezone-aware), or None when it is not a valid one.

    A timestamp without an offset is read as UTC.
    """
    if _COMMON.fullmatch(value):
        try:
            return datetime.fromisoformat(value)
        except ValueError:  # a day, hour or second out of range
            return None
    return _parse_any(value)


def _parse_any(value: str) -> datetime | None:
    """What parse_timestamp reads, whatever the form (the fast path's yardstick in tests)."""
    m = _EXTENDED.match(value) or _BASIC.match(value)
    if m is None:
        return None
    tz = m.group("tz")
    if tz and _NEGATIVE_ZERO.search(tz):
        return None
    offset = _offset(tz)
    if offset is None:
        return None
    frac = (m.group("f") or "0")[:6].ljust(6, "0")
    try:
        naive = datetime(
            int(m.group("y")),
            int(m.group("mo")),
            int(m.group("d")),
            int(m.group("h")),
            int(m.group("mi")),
            int(m.group("s") or 0),
            int(frac),
        )
    except ValueError:
        return None
    instant = naive.replace(tzinfo=offset)
    # Every instant is kept and compared in UTC; one that falls outside years 1-9999 there
    # ("0001-01-01T00:30+01:00") cannot be, so it is not a timestamp the LRS can accept.
    try:
        instant.astimezone(UTC)
    except OverflowError:
        return None
    return instant


def _offset(tz: str | None) -> timezone | None:
    """The UTC offset a timestamp names; None when it is out of range (24 h or more)."""
    if not tz or tz in ("Z", "z"):
        return UTC
    sign = -1 if tz[0] == "-" else 1
    digits = tz[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
    if hours > 23 or minutes > 59:
        return None
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def format_timestamp(instant: datetime) -> str:
    """The canonical form the LRS writes: UTC, microseconds, ``Z``."""
    # isoformat, unlike strftime's %Y, writes years before 1000 with four digits.
    return instant.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def is_utc(value: str) -> bool:
    """Whether a valid timestamp string is written in UTC (``Z`` or ``+00:00``) or has no offset."""
    if _COMMON.fullmatch(value):
        return True
    m = _EXTENDED.match(value) or _BASIC.match(value)
    if m is None:
        return False
    tz = m.group("tz")
    return not tz or tz in ("Z", "z") or tz.lstrip("+").replace(":", "") in ("00", "0000")
