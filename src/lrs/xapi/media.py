"""Media types as headers and attachment declarations carry them."""

from __future__ import annotations


def media_type(content_type: str | None) -> str:
    """The bare, lower-case type/subtype of a Content-Type value ("" when there is none):
    parameters such as ``charset`` do not change what a body is."""
    return (content_type or "").split(";", 1)[0].strip().lower()
