"""HTTP Basic authentication: the caller of each request.

Secrets are long random strings, so a sha256 of the secret compared in constant time is as
strong as a slow password hash and costs microseconds. Verified credentials are cached for
``credential_cache_seconds`` so most requests do not touch the database to authenticate.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from collections import deque
from datetime import UTC, datetime
from typing import Annotated

from fastapi import Depends, Request

from lrs.api.services import services
from lrs.ops import credentials as credential_ops
from lrs.ops.caller import Caller
from lrs.ops.credentials import Credential, hash_secret
from lrs.store.database import Database
from lrs.xapi.errors import TooManyRequests, Unauthorized


class FailureLimiter:
    """Counts failed authentications per client address and per key in a sliding minute.

    It lives in each server process: with N workers a client gets up to N times the limit
    before every worker refuses it. That bounds guessing well enough without making a failed
    login cost a database write.
    """

    WINDOW = 60.0

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, *subjects: str) -> int | None:
        """Seconds until the busiest subject may try again, or None when none is limited."""
        now = time.monotonic()
        waits = []
        for subject in subjects:
            times = self._failures.get(subject)
            if not times:
                continue
            while times and now - times[0] > self.WINDOW:
                times.popleft()
            if len(times) >= self.per_minute:
                waits.append(int(self.WINDOW - (now - times[0])) + 1)
        return max(waits) if waits else None

    def failed(self, *subjects: str) -> None:
        now = time.monotonic()
        if len(self._failures) > 100_000:
            self._failures.clear()
        for subject in subjects:
            self._failures.setdefault(subject, deque()).append(now)


class Authenticator:
    def __init__(self, db: Database, cache_seconds: float, failures_per_minute: int = 30) -> None:
        self.db = db
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, Credential | None]] = {}
        self.limiter = FailureLimiter(failures_per_minute)

    async def authenticate(self, header: str | None, client: str = "-") -> Caller:
        subjects = [f"client:{client}"]
        try:
            key, secret = _parse_basic(header)
            subjects.append(f"key:{key}")
            wait = self.limiter.retry_after(*subjects)
            if wait is not None:
                raise TooManyRequests("too many failed authentications; try again later", retry_after=wait)
            return await self._verify(key, secret)
        except Unauthorized:
            self.limiter.failed(*subjects)
            raise

    async def sign_in(self, key: str, secret: str, client: str = "-") -> Caller:
        """Verify a key and secret typed into a form; failures count as failed requests do."""
        subjects = [f"client:{client}", f"key:{key}"]
        wait = self.limiter.retry_after(*subjects)
        if wait is not None:
            raise TooManyRequests("too many failed sign-ins; try again later", retry_after=wait)
        try:
            return await self._verify(key, secret)
        except Unauthorized:
            self.limiter.failed(*subjects)
            raise

    async def resume(self, key: str) -> Caller:
        """The caller of a signed-in session, if its credential is still valid."""
        credential = await self._lookup(key) if "\x00" not in key else None
        if credential is None or credential.revoked is not None:
            raise Unauthorized("this credential is no longer valid")
        if credential.expires is not None and credential.expires <= datetime.now(UTC):
            raise Unauthorized("this credential has expired")
        return Caller(credential)

    async def _verify(self, key: str, secret: str) -> Caller:
        # PostgreSQL text cannot hold NUL, so no stored key has one: such a key is just wrong.
        credential = await self._lookup(key) if "\x00" not in key else None
        # Compare against a dummy hash for unknown keys, so both paths take the same time.
        expected = credential.secret_hash if credential else _DUMMY_HASH
        if not hmac.compare_digest(hash_secret(secret), expected) or credential is None:
            raise Unauthorized("the key or secret is wrong")
        if credential.revoked is not None:
            raise Unauthorized("this credential has been revoked")
        if credential.expires is not None and credential.expires <= datetime.now(UTC):
            raise Unauthorized("this credential has expired")
        return Caller(credential)

    async def _lookup(self, key: str) -> Credential | None:
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached is not None and now - cached[0] < self.cache_seconds:
            return cached[1]
        credential = await credential_ops.lookup(self.db, key)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (now, credential)
        return credential

    def forget(self, key: str) -> None:
        """Drop one cached credential (``*``: all of them), e.g. when it was revoked."""
        if key == credential_ops.EVERYONE:
            self._cache.clear()
        else:
            self._cache.pop(key, None)

    def forget_all(self) -> None:
        self._cache.clear()


_DUMMY_HASH = hash_secret("not a secret anyone has")


def _parse_basic(header: str | None) -> tuple[str, str]:
    if not header:
        raise Unauthorized("authentication is required (HTTP Basic)")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        raise Unauthorized("use HTTP Basic authentication")
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthorized("the Authorization header is not valid Basic credentials") from None
    key, sep, secret = decoded.partition(":")
    if not sep:
        raise Unauthorized("the Authorization header is not valid Basic credentials")
    return key, secret


async def caller(request: Request) -> Caller:
    """FastAPI dependency: the authenticated caller of this request."""
    client = request.client.host if request.client else "-"
    authenticator = (await services(request)).authenticator
    return await authenticator.authenticate(request.headers.get("authorization"), client)


CallerDep = Annotated[Caller, Depends(caller)]
