"""Which xAPI version a request speaks, from its ``X-Experience-API-Version`` header."""

from __future__ import annotations

import re
from enum import StrEnum

from lrs.xapi.errors import BadRequest

VERSION_HEADER = "X-Experience-API-Version"


class Version(StrEnum):
    V1 = "1.0.3"
    V2 = "2.0.0"


# Every version this LRS can speak, newest first. An installation may serve fewer.
SUPPORTED = (Version.V2, Version.V1)
_ACCEPTED = re.compile(r"^(1\.0(\.\d+)?|2\.0(\.\d+)?)\Z", re.ASCII)


def negotiate(header: str | None, served: tuple[Version, ...] = SUPPORTED) -> Version:
    """The version to serve a request with; 400 when the header is missing, unknown, or
    names a version this installation does not serve."""
    if header is None:
        raise BadRequest(f"the {VERSION_HEADER} header is required")
    value = header.strip()
    if not _ACCEPTED.match(value):
        raise BadRequest(f"{VERSION_HEADER} '{value}' is not supported; use {_names(served)}")
    version = Version.V2 if value.startswith("2.") else Version.V1
    if version not in served:
        raise BadRequest(f"{VERSION_HEADER} '{value}' is not served here; use {_names(served)}")
    return version


def _names(served: tuple[Version, ...]) -> str:
    return " or ".join(v.value.rsplit(".", 1)[0] + ".x" for v in served)


def statement_version_ok(value: str, served: Version) -> bool:
    """Whether a statement's own ``version`` property is one this request may carry."""
    if re.fullmatch(r"1\.0(\.\d+)?", value):
        return True
    return served is Version.V2 and re.fullmatch(r"2\.0(\.\d+)?", value) is not None
