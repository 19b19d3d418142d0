"""Attachment bytes on their way out: a multipart/mixed body of statements and attachments,
for a GET's answer and for forwarding to another LRS."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from lrs.store import attachments as attachment_store
from lrs.store.attachments import Stored
from lrs.store.database import Database


async def multipart_body(
    db: Database, store_id: int, boundary: str, statements: bytes, stored: Sequence[Stored]
) -> AsyncIterator[bytes]:
    """A multipart/mixed body: the statements (JSON) first, then each attachment's bytes,
    read chunk by chunk on a connection of its own. For a GET's answer and for forwarding."""
    yield f"--{boundary}\r\nContent-Type: application/json\r\n\r\n".encode() + statements + b"\r\n"
    for attachment in stored:
        yield (
            f"--{boundary}\r\nContent-Type: {attachment.content_type}\r\n"
            f"Content-Transfer-Encoding: binary\r\n"
            f"X-Experience-API-Hash: {attachment.sha2}\r\n\r\n"
        ).encode()
        async with db.engine.connect() as conn:
            async for chunk in attachment_store.chunks(conn, store_id, attachment.sha2):
                yield chunk
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode()
