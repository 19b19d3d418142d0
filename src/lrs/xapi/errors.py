"""Errors the protocol raises; the API layer turns them into responses."""

from __future__ import annotations


class XAPIError(Exception):
    """A request the LRS refuses, with the HTTP status the spec names."""

    status: int = 400

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class BadRequest(XAPIError):
    status = 400


class Unauthorized(XAPIError):
    status = 401


class Forbidden(XAPIError):
    status = 403


class NotFound(XAPIError):
    status = 404


class Conflict(XAPIError):
    status = 409


class PreconditionFailed(XAPIError):
    status = 412


class PayloadTooLarge(XAPIError):
    status = 413


class Unavailable(XAPIError):
    status = 503


class TooManyRequests(XAPIError):
    status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
