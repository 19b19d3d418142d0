"""Forwarding: statements pushed to other LRSs, at least once and in order per rule.

A rule belongs to a store and names a target (its xAPI endpoint, credentials and version),
a filter, and whether agents are pseudonymised on the way. ``enqueue`` runs inside every
statement write: what matches goes into the rule's outbox in the same transaction, so a
stored statement is never forgotten. ``forward_pending`` runs in the elected background
worker: it sends each due rule's oldest batch, and only when the target has answered 2xx
does the batch leave the outbox. A failure waits (exponential backoff) and is tried again;
after ``max_attempts`` the batch goes to the dead letters, where an admin retries or drops it.
After a crash a batch may be sent twice: statement ids are kept, and an LRS stores an
identical statement once.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.ext.asyncio import AsyncConnection

from lrs.config import Settings
from lrs.ops import attachments as attachment_ops
from lrs.ops.stores import store_named
from lrs.store import attachments as attachment_store
from lrs.store import audit
from lrs.store import forwarding as forward_store
from lrs.store.database import Database, now
from lrs.store.forwarding import Dead, Rule
from lrs.xapi.attachments import referenced_hashes
from lrs.xapi.errors import Conflict, NotFound
from lrs.xapi.pseudonyms import Pseudonym
from lrs.xapi.statements import Prepared

VOIDED = "http://adlnet.gov/expapi/verbs/voided"


# --- what a rule says ---------------------------------------------------------------------------


class Filter(BaseModel):
    """Which statements a rule forwards: all of the lists given must match (an empty list
    matches everything)."""

    model_config = ConfigDict(extra="forbid")
    verbs: list[str] = Field(default_factory=list, description="Verb ids (exact).")
    activities: list[str] = Field(
        default_factory=list,
        description="Activity IRI prefixes, matched against the object and the context activities.",
    )
    credentials: list[str] = Field(
        default_factory=list, description="Keys of the credentials (vendors) that sent the statement."
    )


class RuleSpec(BaseModel):
    """A new forwarding rule. The target's secret and the pseudonym secret are kept
    encrypted and never shown again."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
    endpoint: str = Field(description="The target's xAPI base URL, e.g. https://region.example/xapi")
    version: Literal["1.0.3", "2.0.0"] = "2.0.0"
    key: str = Field(min_length=1, max_length=500, description="The target credential's key")
    secret: str = Field(min_length=1, max_length=500, description="The target credential's secret")
    filter: Filter = Field(default_factory=Filter)
    pseudonymise: bool = Field(
        default=False, description="Replace every agent by a stable pseudonymous account; drop names"
    )
    pseudonym_home_page: str | None = Field(
        default=None,
        description="account.homePage of the pseudonyms (default: the LRS's authority home page)",
    )
    enabled: bool = True
    batch_size: int = Field(default=100, ge=1, le=1000)
    max_attempts: int = Field(default=8, ge=1, le=100)

    @field_validator("endpoint")
    @classmethod
    def http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")


class RuleChange(BaseModel):
    """Some of a rule's settings (pseudonymisation is fixed when the rule is made)."""

    model_config = ConfigDict(extra="forbid")
    endpoint: str | None = None
    version: Literal["1.0.3", "2.0.0"] | None = None
    key: str | None = Field(default=None, min_length=1, max_length=500)
    secret: str | None = Field(default=None, min_length=1, max_length=500)
    filter: Filter | None = None
    enabled: bool | None = None
    batch_size: int | None = Field(default=None, ge=1, le=1000)
    max_attempts: int | None = Field(default=None, ge=1, le=100)

    @field_validator("endpoint")
    @classmethod
    def http_url(cls, value: str | None) -> str | None:
        return None if value is None else RuleSpec.http_url(value)


class RuleOut(BaseModel):
    name: str
    endpoint: str
    version: str
    key: str
    filter: Filter
    pseudonymise: bool
    pseudonym_home_page: str | None
    enabled: bool
    batch_size: int
    max_attempts: int
    pending: int = Field(description="Statements in the outbox")
    lag_seconds: float = Field(description="Age of the oldest statement still to send (0: none)")
    sent: int
    failed: int = Field(description="Failed attempts")
    dead: int = Field(description="Batches moved to the dead letters")
    attempts: int = Field(description="Failed attempts at the current batch")
    next_attempt: datetime
    last_error: str | None
    created: datetime


class DeadOut(BaseModel):
    id: int
    statements: int
    first_seq: int
    last_seq: int
    error: str
    attempts: int
    created: datetime

    @classmethod
    def of(cls, d: Dead) -> DeadOut:
        return cls(
            id=d.id,
            statements=d.statements,
            first_seq=d.first_seq,
            last_seq=d.last_seq,
            error=d.error,
            attempts=d.attempts,
            created=d.created,
        )


# --- secrets at rest ------------------------------------------------------------------------------


async def sealing_key(db: Database, settings: Settings) -> bytes:
    """The key the target credentials are sealed with: from LRS_SECRET_KEY, else the
    installation's own secret (kept in its database)."""
    secret = settings.secret_key.encode() if settings.secret_key else await db.instance_secret()
    return hashlib.sha256(b"lrs forwarding\x00" + secret).digest()


def seal(key: bytes, data: bytes) -> bytes:
    nonce = os.urandom(12)
    return nonce + AESGCM(key).encrypt(nonce, data, b"forwarding")


def unseal(key: bytes, sealed: bytes) -> bytes:
    try:
        return AESGCM(key).decrypt(sealed[:12], sealed[12:], b"forwarding")
    except InvalidTag as exc:
        raise RuntimeError(
            "forwarding secrets were sealed with another key (LRS_SECRET_KEY changed?)"
        ) from exc


def _out(rule: Rule, key: bytes, now: datetime) -> RuleOut:
    target = orjson.loads(unseal(key, rule.credentials))
    return RuleOut(
        name=rule.name,
        endpoint=rule.endpoint,
        version=rule.version,
        key=target["key"],
        filter=Filter.model_validate(rule.filter),
        pseudonymise=rule.pseudonym_secret is not None,
        pseudonym_home_page=rule.pseudonym_home_page,
        enabled=rule.enabled,
        batch_size=rule.batch_size,
        max_attempts=rule.max_attempts,
        pending=rule.pending,
        lag_seconds=max((now - rule.oldest).total_seconds(), 0.0) if rule.oldest else 0.0,
        sent=rule.sent,
        failed=rule.failed,
        dead=rule.dead,
        attempts=rule.attempts,
        next_attempt=rule.next_attempt,
        last_error=rule.last_error,
        created=rule.created,
    )


# --- managing rules -------------------------------------------------------------------------------


async def _rule(conn: AsyncConnection, store_name: str, name: str) -> Rule:
    store = await store_named(conn, store_name)
    rule = await forward_store.named(conn, store.id, name)
    if rule is None:
        raise NotFound(f"store {store_name!r} has no forwarding rule named {name!r}")
    return rule


async def create(db: Database, settings: Settings, actor: str, store_name: str, spec: RuleSpec) -> RuleOut:
    key = await sealing_key(db, settings)

    async def work(conn: AsyncConnection) -> RuleOut:
        store = await store_named(conn, store_name)
        if await forward_store.named(conn, store.id, spec.name) is not None:
            raise Conflict(f"store {store_name!r} has a forwarding rule named {spec.name!r}")
        values = {
            "name": spec.name,
            "endpoint": spec.endpoint,
            "version": spec.version,
            "credentials": seal(key, orjson.dumps({"key": spec.key, "secret": spec.secret})),
            "filter": spec.filter.model_dump(),
            "pseudonym_secret": seal(key, secrets.token_bytes(32)) if spec.pseudonymise else None,
            "pseudonym_home_page": (spec.pseudonym_home_page or settings.authority_home_page)
            if spec.pseudonymise
            else None,
            "enabled": spec.enabled,
            "batch_size": spec.batch_size,
            "max_attempts": spec.max_attempts,
        }
        rule = await forward_store.create(conn, store.id, values)
        shown = {k: v for k, v in spec.model_dump().items() if k != "secret"}
        await audit.record(conn, actor, "forward.create", store.name, spec.name, shown)
        return _out(rule, key, await now(conn))

    return await db.write(work)


async def change(
    db: Database, settings: Settings, actor: str, store_name: str, name: str, spec: RuleChange
) -> RuleOut:
    key = await sealing_key(db, settings)

    async def work(conn: AsyncConnection) -> RuleOut:
        rule = await _rule(conn, store_name, name)
        values: dict[str, Any] = {
            k: v for k, v in spec.model_dump(exclude_unset=True).items() if k not in ("key", "secret")
        }
        if spec.filter is not None:
            values["filter"] = spec.filter.model_dump()
        if spec.key is not None or spec.secret is not None:
            target = orjson.loads(unseal(key, rule.credentials))
            target.update({k: v for k, v in (("key", spec.key), ("secret", spec.secret)) if v is not None})
            values["credentials"] = seal(key, orjson.dumps(target))
        if values:
            await forward_store.update(conn, rule.id, values)
        shown = {k: v for k, v in spec.model_dump(exclude_unset=True).items() if k != "secret"}
        await audit.record(conn, actor, "forward.change", store_name, name, shown)
        changed = await forward_store.named(conn, rule.store_id, name)
        assert changed is not None
        return _out(changed, key, await now(conn))

    return await db.write(work)


async def delete(db: Database, actor: str, store_name: str, name: str) -> None:
    async def work(conn: AsyncConnection) -> None:
        rule = await _rule(conn, store_name, name)
        await forward_store.delete(conn, rule.id)
        await audit.record(conn, actor, "forward.delete", store_name, name, {"pending": rule.pending})

    await db.write(work)


async def list_rules(db: Database, settings: Settings, store_name: str) -> list[RuleOut]:
    key = await sealing_key(db, settings)

    async def work(conn: AsyncConnection) -> list[RuleOut]:
        store = await store_named(conn, store_name)
        at = await now(conn)
        return [_out(r, key, at) for r in await forward_store.of_store(conn, store.id)]

    return await db.read(work)


async def get(db: Database, settings: Settings, store_name: str, name: str) -> RuleOut:
    key = await sealing_key(db, settings)

    async def work(conn: AsyncConnection) -> RuleOut:
        return _out(await _rule(conn, store_name, name), key, await now(conn))

    return await db.read(work)


async def dead_letters(db: Database, store_name: str, name: str) -> list[DeadOut]:
    async def work(conn: AsyncConnection) -> list[DeadOut]:
        rule = await _rule(conn, store_name, name)
        return [DeadOut.of(d) for d in await forward_store.dead(conn, rule.id)]

    return await db.read(work)


async def retry(db: Database, actor: str, store_name: str, name: str, dead_id: int) -> None:
    """Send a dead letter's statements again (they rejoin the outbox in seq order)."""

    async def work(conn: AsyncConnection) -> None:
        rule = await _rule(conn, store_name, name)
        if not await forward_store.revive(conn, rule.id, dead_id):
            raise NotFound(f"rule {name!r} has no dead letter {dead_id}")
        await audit.record(conn, actor, "forward.retry", store_name, name, {"dead_letter": dead_id})

    await db.write(work)


async def drop(db: Database, actor: str, store_name: str, name: str, dead_id: int) -> None:
    """Give up on a dead letter: its statements are not sent."""

    async def work(conn: AsyncConnection) -> None:
        rule = await _rule(conn, store_name, name)
        if not await forward_store.drop(conn, rule.id, dead_id):
            raise NotFound(f"rule {name!r} has no dead letter {dead_id}")
        await audit.record(conn, actor, "forward.drop", store_name, name, {"dead_letter": dead_id})

    await db.write(work)


# --- at write time --------------------------------------------------------------------------------


def matches(filter: dict[str, Any], statement: dict[str, Any], credential: str) -> bool:
    """Whether a rule's filter takes the statement. A voiding statement passes whatever the
    verbs and activities say (the target must learn of every voiding), but not a credential
    filter it fails."""
    credentials = filter.get("credentials") or []
    if credentials and credential not in credentials:
        return False
    if statement["verb"]["id"] == VOIDED and statement["object"].get("objectType") == "StatementRef":
        return True
    verbs = filter.get("verbs") or []
    if verbs and statement["verb"]["id"] not in verbs:
        return False
    prefixes = filter.get("activities") or []
    if prefixes:
        return any(i.startswith(p) for i in _activity_ids(statement) for p in prefixes)
    return True


def _activity_ids(statement: dict[str, Any]) -> Iterable[str]:
    obj = statement["object"]
    if obj.get("objectType", "Activity") == "Activity":
        yield obj["id"]
    for kind in (statement.get("context") or {}).get("contextActivities", {}).values():
        for a in kind if isinstance(kind, list) else [kind]:
            yield a["id"]


async def enqueue(
    conn: AsyncConnection, store_id: int, credential: str, stored: list[tuple[int, Prepared]]
) -> None:
    """Put the newly stored statements that match the store's rules into their outboxes
    (inside the transaction that stores them)."""
    if not stored:
        return
    rules = await forward_store.filters(conn, store_id)
    if not rules:
        return
    rule_ids, seqs = [], []
    for rule_id, filter in rules:
        for seq, p in stored:
            if matches(filter, p.statement, credential):
                rule_ids.append(rule_id)
                seqs.append(seq)
    await forward_store.enqueue(conn, rule_ids, seqs)


# --- in the background worker ---------------------------------------------------------------------


@dataclass(frozen=True)
class Backoff:
    first_seconds: float
    max_seconds: float

    def wait(self, attempts: int) -> float:
        """Seconds before the next try, after ``attempts`` failed ones."""
        return float(min(self.first_seconds * 2 ** max(attempts - 1, 0), self.max_seconds))


async def forward_pending(db: Database, key: bytes, client: httpx.AsyncClient, backoff: Backoff) -> int:
    """One batch for each rule that is due; the statements delivered."""
    delivered = 0
    for rule in await db.read(forward_store.due):
        delivered += await _send(db, key, client, backoff, rule)
    return delivered


async def _send(db: Database, key: bytes, client: httpx.AsyncClient, backoff: Backoff, rule: Rule) -> int:
    rows = await db.read(lambda c: forward_store.batch(c, rule))
    if not rows:
        return 0
    seqs = [seq for seq, _ in rows]
    statements = [orjson.loads(doc) for _, doc in rows if doc is not None]
    if rule.pseudonym_secret is not None:
        pseudonym = Pseudonym(unseal(key, rule.pseudonym_secret), rule.pseudonym_home_page or "")
        statements = [pseudonym.statement(s) for s in statements]
    target = orjson.loads(unseal(key, rule.credentials))
    try:
        if statements:
            response = await _post(db, client, rule, target, statements)
            if response.status_code >= 300:
                raise _Refused(f"{response.status_code}: {response.text[:500]}")
    except (httpx.HTTPError, _Refused) as exc:
        error = str(exc) or type(exc).__name__
        attempts = rule.attempts + 1
        if attempts >= rule.max_attempts:
            await db.write(lambda c: forward_store.bury(c, rule.id, seqs, error, attempts))
        else:
            await db.write(lambda c: forward_store.failed(c, rule.id, error, backoff.wait(attempts)))
        return 0
    await db.write(lambda c: forward_store.sent(c, rule.id, seqs, len(statements)))
    return len(statements)


class _Refused(Exception):
    """The target answered, but not with 2xx."""


async def _post(
    db: Database,
    client: httpx.AsyncClient,
    rule: Rule,
    target: dict[str, str],
    statements: list[dict[str, Any]],
) -> httpx.Response:
    """POST the batch; as multipart/mixed when statements carry attachments whose bytes
    this store holds."""
    headers = {"X-Experience-API-Version": rule.version}
    auth = (target["key"], target["secret"])
    url = rule.endpoint + "/statements"
    body = orjson.dumps(statements)
    hashes = list(dict.fromkeys(h for s in statements for h in referenced_hashes(s)))
    stored = await db.read(lambda c: attachment_store.find(c, rule.store_id, hashes)) if hashes else []
    if not stored:
        return await client.post(
            url, content=body, headers={**headers, "Content-Type": "application/json"}, auth=auth
        )
    boundary = secrets.token_hex(16)
    return await client.post(
        url,
        content=attachment_ops.multipart_body(db, rule.store_id, boundary, body, stored),
        headers={**headers, "Content-Type": f"multipart/mixed; boundary={boundary}"},
        auth=auth,
    )


async def status(db: Database) -> list[tuple[str, Rule]]:
    """Every rule with its backlog, as (store name, rule): for metrics and health."""
    return await db.read(forward_store.everywhere)
