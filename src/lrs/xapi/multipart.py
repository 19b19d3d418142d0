"""Reading ``multipart/mixed`` bodies (statement requests, answers pulled from another LRS).

The first part (the statements) is kept in memory; every other part goes to a spooled
temporary file (memory up to 1 MiB, then disk) and is hashed as it arrives, so a large
attachment is never held in memory whole.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import AsyncIterable
from dataclasses import dataclass, field
from typing import IO, Any

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from lrs.xapi.attachments import PartInfo, digest_name
from lrs.xapi.errors import BadRequest, PayloadTooLarge
from lrs.xapi.media import media_type

_SPOOL_BYTES = 1024 * 1024


@dataclass
class Part:
    headers: dict[str, str] = field(default_factory=dict)
    data: bytearray = field(default_factory=bytearray)  # first part only
    file: IO[bytes] | None = None
    hasher: Any = None
    length: int = 0

    def info(self) -> PartInfo:
        return PartInfo(
            hash_header=self.headers.get("x-experience-api-hash"),
            content_type=self.headers.get("content-type"),
            transfer_encoding=self.headers.get("content-transfer-encoding"),
            digest=self.hasher.hexdigest() if self.hasher else "",
            length=self.length,
            content_length=_int(self.headers.get("content-length")),
        )


@dataclass
class Multipart:
    statements: bytes
    attachments: list[Part]

    def close(self) -> None:
        for part in self.attachments:
            if part.file is not None:
                part.file.close()


def boundary_of(content_type: str) -> bytes:
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise BadRequest("Content-Type: multipart/mixed needs a boundary parameter")
    return boundary


async def read_multipart(
    content_type: str, chunks: AsyncIterable[bytes], max_attachment_bytes: int
) -> Multipart:
    """Parse a multipart/mixed body (a request's, or a response's when pulling from another
    LRS) as it streams in; 400 for a malformed body, 413 for an oversized attachment."""
    parts: list[Part] = []
    field_name = bytearray()
    field_value = bytearray()
    ended = False

    def on_part_begin() -> None:
        parts.append(Part())

    def on_header_field(data: bytes, start: int, end: int) -> None:
        field_name.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        field_value.extend(data[start:end])

    def on_header_end() -> None:
        name = field_name.decode("latin-1").strip().lower()
        parts[-1].headers[name] = field_value.decode("latin-1").strip()
        field_name.clear()
        field_value.clear()

    def on_headers_finished() -> None:
        part = parts[-1]
        if len(parts) > 1:
            part.file = tempfile.SpooledTemporaryFile(max_size=_SPOOL_BYTES)  # noqa: SIM115
            hash_header = part.headers.get("x-experience-api-hash", "")
            part.hasher = hashlib.new(digest_name(hash_header.strip()))

    def on_part_data(data: bytes, start: int, end: int) -> None:
        part = parts[-1]
        chunk = data[start:end]
        part.length += len(chunk)
        if part.file is None:
            part.data.extend(chunk)
            return
        if part.length > max_attachment_bytes:
            raise PayloadTooLarge(f"an attachment is larger than {max_attachment_bytes} bytes")
        part.file.write(chunk)
        part.hasher.update(chunk)

    def on_end() -> None:
        nonlocal ended
        ended = True

    parser = MultipartParser(
        boundary_of(content_type),
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_end": on_end,
        },
    )
    result = Multipart(b"", [])
    try:
        async for chunk in chunks:
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        _close(parts)
        raise BadRequest(f"the multipart/mixed body is malformed ({exc})") from None
    except BaseException:
        _close(parts)
        raise
    if not ended or not parts:
        _close(parts)
        raise BadRequest("the multipart/mixed body is malformed: it has no closing boundary")
    first = parts[0]
    first_type = media_type(first.headers.get("content-type"))
    if first_type != "application/json":
        _close(parts)
        raise BadRequest(
            "the first part of a multipart/mixed body must be application/json and hold the statements"
        )
    result.statements = bytes(first.data)
    result.attachments = parts[1:]
    return result


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise BadRequest(f"a part's Content-Length {value!r} is not a number") from None


def _close(parts: list[Part]) -> None:
    for part in parts:
        if part.file is not None:
            part.file.close()
