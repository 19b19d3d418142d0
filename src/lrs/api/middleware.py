"""ASGI middleware: the body limit on every route; for the xAPI mount, version negotiation and
the alternate request syntax.

It sits in front of the routers so that every xAPI response, errors included, carries the
negotiated ``X-Experience-API-Version``.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lrs.api.errors import error_response
from lrs.xapi.errors import BadRequest, XAPIError
from lrs.xapi.media import media_type
from lrs.xapi.versions import SUPPORTED, VERSION_HEADER, Version, negotiate

_HEADER_FORM_FIELDS = {
    "authorization",
    "x-experience-api-version",
    "content-type",
    "content-length",
    "if-match",
    "if-none-match",
}
_ALTERNATE_METHODS = {"GET", "PUT", "POST", "DELETE", "HEAD"}


class BodyTooLarge(HTTPException):
    """Raised while a body is read, past the limit. An HTTPException rather than an XAPIError
    so that FastAPI's own body parsing (the admin API's models) passes it on as a 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")


def request_version(scope: Scope) -> Version:
    """The version negotiated for this request (set by :class:`XAPIMiddleware`)."""
    version: Version = scope["state"]["xapi_version"]
    return version


class XAPIMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        base_path: str,
        max_body_bytes: int,
        max_header_bytes: int = 16 * 1024,
        versions: tuple[Version, ...] = SUPPORTED,
    ) -> None:
        self.app = app
        # Newest first: a response that cannot know the client's version names the newest.
        self.versions = versions
        self.base_path = base_path.rstrip("/")
        self.max_body_bytes = max_body_bytes
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header_bytes = sum(len(k) + len(v) + 4 for k, v in scope["headers"])
        if header_bytes > self.max_header_bytes:
            response = error_response(
                431, f"the request headers are larger than {self.max_header_bytes} bytes"
            )
            await response(scope, receive, send)
            return
        # The body limit holds on every route and is checked before anything reads the body,
        # so that an unauthenticated client cannot make the server hold a huge body.
        length = _header(scope, "content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            xapi = scope["path"].startswith(self.base_path + "/")
            response = error_response(413, f"the request body is larger than {self.max_body_bytes} bytes")
            if xapi:
                response.headers[VERSION_HEADER] = self.versions[0].value
            await response(scope, receive, send)
            return
        receive = self._limited(receive)
        if not scope["path"].startswith(self.base_path + "/"):
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})
        version: Version | None = None
        try:
            if scope["method"] == "POST" and _has_method_param(scope):
                scope, receive = await self._alternate(scope, receive)
            is_about = scope["path"] == self.base_path + "/about"
            header = _header(scope, VERSION_HEADER.lower())
            version = self.versions[0] if is_about and not header else negotiate(header, self.versions)
        except (XAPIError, BodyTooLarge) as exc:
            if isinstance(exc, BodyTooLarge):
                response = error_response(exc.status_code, exc.detail)
            else:
                response = error_response(exc.status, exc.message)
            response.headers[VERSION_HEADER] = (version or self.versions[0]).value
            await response(scope, receive, send)
            return
        scope["state"]["xapi_version"] = version

        async def send_with_version(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v) for k, v in message.get("headers", []) if k.lower() != b"x-experience-api-version"
                ]
                headers.append((b"x-experience-api-version", version.value.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_version)

    def _limited(self, receive: Receive) -> Receive:
        seen = 0
        limit = self.max_body_bytes

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        return limited

    async def _alternate(self, scope: Scope, receive: Receive) -> tuple[Scope, Receive]:
        """Turn a 1.0.3 alternate-syntax POST (``?method=``) into the request it stands for."""
        query = parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
        method = next(v for k, v in query if k == "method").upper()
        if len(query) != 1:
            raise BadRequest("with ?method=, every other parameter goes in the form body")
        if method not in _ALTERNATE_METHODS:
            raise BadRequest(f"method: {method!r} is not an xAPI method")
        content_type = media_type(_header(scope, "content-type"))
        if content_type != "application/x-www-form-urlencoded":
            raise BadRequest("a ?method= request must be application/x-www-form-urlencoded")
        body = await _read_all(receive)
        try:
            form = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise BadRequest("the form body is not UTF-8") from None
        params: list[tuple[str, str]] = []
        form_headers: dict[bytes, bytes] = {}
        content = b""
        for name, value in form:
            lowered = name.lower()
            if lowered == "content":
                content = value.encode("utf-8")
            elif lowered in _HEADER_FORM_FIELDS:
                if lowered != "content-length":
                    form_headers[lowered.encode("latin-1")] = _header_value(name, value)
            else:
                params.append((name, value))
        # The real Content-Type/Length describe the form; the form's fields win over the rest.
        replaced = {b"content-type", b"content-length", *form_headers}
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in replaced]
        headers.extend(form_headers.items())
        version = next((v for k, v in headers if k == b"x-experience-api-version"), None)
        if version is not None and negotiate(version.decode("latin-1"), self.versions) is Version.V2:
            raise BadRequest("the alternate request syntax (?method=) is not part of xAPI 2.0")
        if not any(k == b"content-type" for k, _ in headers):
            # xAPI content is JSON unless the form says otherwise.
            headers.append((b"content-type", b"application/json"))
        headers.append((b"content-length", str(len(content)).encode()))
        new_scope: dict[str, Any] = {
            **scope,
            "method": method,
            "headers": headers,
            "query_string": urlencode(params).encode("latin-1"),
        }
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": content, "more_body": False}
            return await receive()

        return new_scope, replay


# What a header value may hold (RFC 9110 field-value): visible ASCII, spaces and tabs, and
# the obsolete Latin-1 text. No CR/LF or other control characters: the value is echoed in
# response headers later (a document's Content-Type), where they would split the header.
_FIELD_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")


def _header_value(name: str, value: str) -> bytes:
    """A form field that stands for a header, as the header's bytes; 400 when no header can
    carry it."""
    if not _FIELD_VALUE.fullmatch(value):
        raise BadRequest(
            f"{name}: the form field stands for a header and must not hold control characters "
            "or text beyond Latin-1"
        )
    return value.encode("latin-1")


def _header(scope: Scope, name: str) -> str | None:
    wanted = name.encode("latin-1")
    for key, value in scope["headers"]:
        if key.lower() == wanted:
            return bytes(value).decode("latin-1")
    return None


def _has_method_param(scope: Scope) -> bool:
    return any(k == "method" for k, _ in parse_qsl(scope["query_string"].decode("latin-1")))


async def _read_all(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)
