"""RFC 5646 language tags and xAPI language maps."""

from __future__ import annotations

import re

# The shape of RFC 5646's langtag, privateuse and the irregular grandfathered tags.
_LANGTAG = re.compile(
    r"""^(
        (?P<lang>[a-z]{2,3}(-[a-z]{3}){0,3}|[a-z]{4}|[a-z]{5,8})
        (-[a-z]{4})?
        (-([a-z]{2}|\d{3}))?
        (-([a-z\d]{5,8}|\d[a-z\d]{3}))*
        (-[\da-wyz](-[a-z\d]{2,8})+)*
        (-x(-[a-z\d]{1,8})+)?
      |x(-[a-z\d]{1,8})+
      |en-gb-oed|i-ami|i-bnn|i-default|i-enochian|i-hak|i-klingon|i-lux|i-mingo
      |i-navajo|i-pwn|i-tao|i-tay|i-tsu|sgn-be-fr|sgn-be-nl|sgn-ch-de
    )\Z""",
    re.VERBOSE | re.IGNORECASE | re.ASCII,
)


def is_language_tag(tag: str) -> bool:
    return _LANGTAG.match(tag) is not None


def best_language(keys: list[str], accept: list[str]) -> str | None:
    """The key of a language map to keep for a reader who accepts ``accept`` (best first).

    Falls back to the map's ``und`` entry, then to its first entry.
    """
    if not keys:
        return None
    lowered = {k.lower(): k for k in keys}
    for wanted in accept:
        w = wanted.lower()
        if w == "*":
            return keys[0]
        if w in lowered:
            return lowered[w]
        for low, original in lowered.items():
            if low.split("-")[0] == w.split("-")[0]:
                return original
    return lowered.get("und", keys[0])


def parse_accept_language(header: str | None) -> list[str]:
    """Language ranges from an ``Accept-Language`` header, highest quality first."""
    if not header:
        return []
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")):
        fields = part.strip().split(";")
        tag = fields[0].strip()
        if not tag:
            continue
        quality = 1.0
        for param in fields[1:]:
            name, _, value = param.strip().partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0:
            ranked.append((-quality, index, tag))
    return [tag for _, _, tag in sorted(ranked)]
