"""Attachment rules: which multipart parts a request must carry and what they must match."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from lrs.xapi.errors import BadRequest
from lrs.xapi.media import media_type

SIGNATURE_USAGE = "http://adlnet.gov/expapi/attachments/signature"
SIGNATURE_CONTENT_TYPE = "application/octet-stream"

# Hex length of a SHA-2 digest -> hashlib name.
DIGESTS = {56: "sha224", 64: "sha256", 96: "sha384", 128: "sha512"}


def digest_name(sha2: str) -> str:
    """The SHA-2 function a declared hash was made with (by its length)."""
    return DIGESTS.get(len(sha2), "sha256")


@dataclass(frozen=True)
class PartInfo:
    """What the LRS read of one attachment part (everything but its content)."""

    hash_header: str | None
    content_type: str | None
    transfer_encoding: str | None
    digest: str  # hex digest of the content, computed with digest_name(hash_header)
    length: int  # bytes received
    content_length: int | None = None  # the part's own Content-Length header, if any


def declared(statement: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every attachment a statement (and its SubStatement) declares."""
    yield from statement.get("attachments", ())
    obj = statement.get("object") or {}
    if obj.get("objectType") == "SubStatement":
        yield from obj.get("attachments", ())


def check_parts(statements: list[dict[str, Any]], parts: list[PartInfo]) -> None:
    """400 unless the parts are exactly the content of the declared attachments.

    Parts are matched to attachments by SHA-2 only, as the spec requires. Every part needs
    ``X-Experience-API-Hash`` and ``Content-Transfer-Encoding: binary``, content that hashes
    to that header, and an attachment declaring that hash; every attachment without
    ``fileUrl`` needs its part. Part headers that mirror attachment properties
    (``Content-Type``, ``Content-Length``) must agree with them when both are given.
    """
    attachments = [a for s in statements for a in declared(s)]
    by_hash: dict[str, list[dict[str, Any]]] = {}
    for a in attachments:
        by_hash.setdefault(a["sha2"].lower(), []).append(a)
    received: set[str] = set()
    for n, part in enumerate(parts, start=2):
        where = f"multipart part {n}"
        if not part.hash_header:
            raise BadRequest(f"{where}: the X-Experience-API-Hash header is missing")
        if (part.transfer_encoding or "").strip().lower() != "binary":
            raise BadRequest(f"{where}: Content-Transfer-Encoding must be binary")
        sha2 = part.hash_header.strip().lower()
        if part.digest != sha2:
            raise BadRequest(f"{where}: its content does not match X-Experience-API-Hash {sha2}")
        if sha2 not in by_hash:
            raise BadRequest(f"{where}: no attachment in the statements declares hash {sha2}")
        for a in by_hash[sha2]:
            _agree(where, part, a)
        received.add(sha2)
    for a in attachments:
        if "fileUrl" not in a and a["sha2"].lower() not in received:
            raise BadRequest(
                f"attachments: no part carries the content of attachment {a['sha2']}; "
                "send it as a multipart/mixed part, or give a fileUrl"
            )


def _agree(where: str, part: PartInfo, attachment: dict[str, Any]) -> None:
    if part.content_type and media_type(part.content_type) != media_type(attachment["contentType"]):
        raise BadRequest(
            f"{where}: Content-Type {part.content_type!r} differs from the "
            f"attachment's contentType {attachment['contentType']!r}"
        )
    if part.content_length is not None:
        if part.content_length != part.length:
            raise BadRequest(
                f"{where}: Content-Length {part.content_length} but {part.length} bytes were sent"
            )
        if part.content_length != attachment["length"]:
            raise BadRequest(
                f"{where}: Content-Length {part.content_length} differs from "
                f"the attachment's length {attachment['length']}"
            )


def needs_parts(statements: list[dict[str, Any]]) -> bool:
    return any("fileUrl" not in a for s in statements for a in declared(s))


def referenced_hashes(statement: dict[str, Any]) -> list[str]:
    return [a["sha2"].lower() for a in declared(statement)]
