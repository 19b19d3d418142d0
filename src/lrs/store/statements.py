"""The statement store: the bulk write path, single reads and indexed queries."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from lrs.jsontext import dumps, holds_nul
from lrs.store.bulk import copy_rows
from lrs.store.keys import index_key
from lrs.xapi.errors import BadRequest, Conflict, Unauthorized
from lrs.xapi.query import StatementQuery
from lrs.xapi.statements import Prepared, index_of, same_statement
from lrs.xapi.timestamps import format_timestamp

# One round trip: the store's row, locked as a foreign key would lock it (its absence: the
# store was deleted), the transaction's clock (it becomes `stored`), statements that already
# have one of the batch's ids, earlier statements whose StatementRef points at one of them,
# the ids among them that a stored voiding statement already voids, and (for a batch written
# with COPY) the seqs it will be stored under.
_LOOKUP = text("""
WITH store AS (SELECT id FROM stores WHERE id = :store FOR KEY SHARE)
SELECT 'now' AS kind, NULL::uuid AS id, NULL::bigint AS seq, NULL::json AS statement,
       now() AS now
UNION ALL
SELECT 'store', NULL, id, NULL, NULL FROM store
UNION ALL
SELECT 'existing', s.id, s.seq, s.statement, NULL
  FROM statements s WHERE s.store_id = :store AND s.id = ANY(CAST(:ids AS uuid[]))
UNION ALL
SELECT 'referrer', s.refers_to, s.seq, NULL, NULL
  FROM statements s WHERE s.store_id = :store AND s.refers_to = ANY(CAST(:ids AS uuid[]))
UNION ALL
SELECT 'voided', s.voids, NULL, NULL, NULL
  FROM statements s WHERE s.store_id = :store AND s.voids = ANY(CAST(:ids AS uuid[]))
UNION ALL
SELECT 'seq', NULL, nextval('statement_seq'), NULL, NULL FROM generate_series(1, :seqs)
""")

_RESERVE = text("SELECT nextval('statement_seq') AS seq FROM generate_series(1, :count)")

# Batches of at least this many statements are written with COPY, which costs PostgreSQL
# about half of what the INSERT below does per statement (and its index rows a fifth less);
# smaller ones with the INSERT, which takes one round trip fewer.
COPY_FROM = 50

_TARGETS = text("""
SELECT s.id, s.voids IS NOT NULL AS is_voiding, replace(CAST(i.key AS text), '-', '') AS key, i.related
  FROM statements s
  LEFT JOIN statement_index i ON i.store_id = s.store_id AND i.seq = s.seq
 WHERE s.store_id = :store AND s.id = ANY(CAST(:ids AS uuid[]))
""")

_INSERT = text("""
INSERT INTO statements
       (store_id, id, stored, timestamp, verb_id, voided, voids, refers_to, credential, statement)
SELECT :store, u.id, COALESCE(u.stored, :stored), u.ts, u.verb, u.voided, u.voids, u.refers_to,
       :credential, u.doc
  FROM unnest(CAST(:ids AS uuid[]), CAST(:ts AS timestamptz[]), CAST(:verbs AS text[]),
              CAST(:voided AS boolean[]), CAST(:voids AS uuid[]), CAST(:refers AS uuid[]),
              CAST(:docs AS json[]), CAST(:kept AS timestamptz[]))
       WITH ORDINALITY AS u(id, ts, verb, voided, voids, refers_to, doc, stored, n)
 ORDER BY u.n
    ON CONFLICT (store_id, id) DO NOTHING
RETURNING id, seq
""")

_STATEMENT_COLUMNS = [
    "store_id", "seq", "id", "stored", "timestamp", "verb_id", "voided", "voids", "refers_to",
    "credential", "statement",
]  # fmt: skip
_INDEX_COLUMNS = ["store_id", "key", "seq", "related"]

# The rows of statements stored in this transaction cannot be there yet (their seqs are new),
# so they go in without ON CONFLICT, which costs PostgreSQL a third more per row.
_INDEX_ROWS = """
INSERT INTO statement_index (store_id, key, seq, related)
SELECT :store, u.key, u.seq, u.related
  FROM unnest(CAST(:keys AS uuid[]), CAST(:seqs AS bigint[]), CAST(:related AS boolean[]))
       AS u(key, seq, related)
"""
_INSERT_INDEX = text(_INDEX_ROWS)

# Earlier statements that refer to new ones may already have some of these rows.
_INSERT_REFERRER_INDEX = text(_INDEX_ROWS + "    ON CONFLICT DO NOTHING\n")

# Voiding statements cannot be voided; a statement already voided stays as it is.
_VOID = text("""
UPDATE statements SET voided = true
 WHERE store_id = :store AND id = ANY(CAST(:ids AS uuid[])) AND voids IS NULL AND NOT voided
RETURNING id
""")


@dataclass(frozen=True)
class Written:
    """What a batch changed: its ids, the statements it newly stored that count (not voided)
    with their seqs, the earlier statements it voided, and when it was stored."""

    ids: list[uuid.UUID]
    counted: list[Prepared]
    counted_seqs: list[int]
    voided: list[uuid.UUID]
    stored: datetime
    # Every statement it newly stored, voided on arrival or not, with its seq.
    inserted: list[tuple[int, Prepared]] = field(default_factory=list)


async def reserve_seqs(conn: AsyncConnection, count: int) -> list[int]:
    """``count`` new seqs, ascending: a batch written with them is stored in that order even
    when a batch after it is written at the same time (an import's)."""
    rows = await conn.execute(_RESERVE, {"count": count})
    return sorted(r.seq for r in rows)


async def insert(
    conn: AsyncConnection,
    store_id: int,
    credential: str,
    batch: list[Prepared],
    seqs: Sequence[int] | None = None,
) -> Written:
    """Store a validated batch in the caller's transaction; all of it or (by raising) none.

    A statement whose id is already stored with the same content is accepted and not stored
    again; with other content it is a 409. ``batch`` is left as it was given: what the store
    fills in (``stored``, inherited index keys) goes into copies, so that a caller may write
    the same batch again after this transaction rolled back (group commit, deadlock retries).
    With ``seqs`` (from :func:`reserve_seqs`, at least one per statement) it is written with
    COPY under them, whatever its size.
    """
    ids = [p.id for p in batch]
    if len(set(ids)) != len(ids):
        raise BadRequest("statements: the batch uses the same statement id more than once")
    copying = seqs is not None or len(batch) >= COPY_FROM
    lookup = {"store": store_id, "ids": ids, "seqs": len(batch) if copying and seqs is None else 0}
    rows = (await conn.execute(_LOOKUP, lookup)).all()
    # The store's row is locked until the commit, as a foreign key would lock it: a
    # deletion of the store waits for this write, or this one finds the store gone.
    if not any(r.kind == "store" for r in rows):
        raise Unauthorized("the store was deleted, and its credentials with it")
    now: datetime = next(r.now for r in rows if r.kind == "now")
    existing = {r.id: r.statement for r in rows if r.kind == "existing"}
    referrers = [(r.id, r.seq) for r in rows if r.kind == "referrer"]
    voided_before = {r.id for r in rows if r.kind == "voided"}

    when = format_timestamp(now)
    stamped = [p if p.text is not None else stamped_copy(p, now, when) for p in batch]
    fresh = stamped
    if existing:
        for p in stamped:
            if p.id in existing and not same_statement(existing[p.id], p):
                raise Conflict(f"statement {p.id} already exists with different content")
        fresh = [p for p in stamped if p.id not in existing]
    if not fresh:
        return Written(ids, [], [], [], now)

    # The lists below run alongside ``fresh`` (and then ``inserted``): a thousand statements
    # each looked up by their UUID several times would cost more than the rest of the Python.
    inherited = await _inherited_index(conn, store_id, fresh)
    voided_here = {p.voids for p in fresh if p.voids is not None}
    # A statement arriving after (or with) its voiding statement is stored voided.
    born_voided = {p.id for p in fresh if p.voids is None and (p.id in voided_here or p.id in voided_before)}
    if copying:
        reserved = seqs if seqs is not None else sorted(r.seq for r in rows if r.kind == "seq")
        seq_list = list(reserved[: len(fresh)])
        statement_rows = [
            (store_id, seq, p.id, p.kept_stored or now, p.timestamp, p.verb_id, p.id in born_voided,
             p.voids, p.refers_to, credential, _doc(p))
            for seq, p in zip(seq_list, fresh, strict=True)
        ]  # fmt: skip
        await copy_rows(conn, "statements", _STATEMENT_COLUMNS, statement_rows)
        inserted, inserted_index = fresh, inherited
    else:
        result = await conn.execute(
            _INSERT,
            {
                "store": store_id,
                "stored": now,
                "credential": credential,
                "ids": [p.id for p in fresh],
                "ts": [p.timestamp for p in fresh],
                "verbs": [p.verb_id for p in fresh],
                "voided": [p.id in born_voided for p in fresh],
                "voids": [p.voids for p in fresh],
                "refers": [p.refers_to for p in fresh],
                "docs": [_doc(p) for p in fresh],
                "kept": [p.kept_stored for p in fresh],
            },
        )
        seq_of = {r.id: r.seq for r in result}
        if len(seq_of) != len(fresh):
            await _check_raced(conn, store_id, [p for p in fresh if p.id not in seq_of])
        kept = [n for n, p in enumerate(fresh) if p.id in seq_of]
        inserted, inserted_index = [fresh[n] for n in kept], [inherited[n] for n in kept]
        seq_list = [seq_of[p.id] for p in inserted]

    index_rows = [
        (store_id, key, seq, rel)
        for seq, index in zip(seq_list, inserted_index, strict=True)
        for key, rel in index.items()
    ]
    if index_rows and copying:
        await copy_rows(conn, "statement_index", _INDEX_COLUMNS, index_rows)
    elif index_rows:
        _, keys, seq_column, related = (list(column) for column in zip(*index_rows, strict=True))
        await conn.execute(
            _INSERT_INDEX, {"store": store_id, "keys": keys, "seqs": seq_column, "related": related}
        )
    by_id = {p.id: n for n, p in enumerate(inserted)}
    # Statements stored earlier that refer to one of these now match what it matches.
    referrer_rows = [
        (key, referrer_seq, rel)
        for target_id, referrer_seq in referrers
        if target_id in by_id
        for key, rel in inserted_index[by_id[target_id]].items()
    ]
    if referrer_rows:
        keys, seq_column, related = (list(column) for column in zip(*referrer_rows, strict=True))
        await conn.execute(
            _INSERT_REFERRER_INDEX, {"store": store_id, "keys": keys, "seqs": seq_column, "related": related}
        )
    outside = [v for v in voided_here if v not in by_id]
    voided_now: list[uuid.UUID] = []
    if outside:
        voided_now = [r.id for r in await conn.execute(_VOID, {"store": store_id, "ids": outside})]
    pairs = list(zip(seq_list, inserted, strict=True))
    counted = [(seq, p) for seq, p in pairs if p.id not in born_voided] if born_voided else pairs
    return Written(ids, [p for _, p in counted], [seq for seq, _ in counted], voided_now, now, pairs)


def _doc(p: Prepared) -> str:
    """The JSON text a statement is stored as. The column (json) would keep a NUL character,
    which jsonb refused, and which the text columns and rollups made from the statement cannot
    hold: it is refused here, before anything of the batch is written."""
    doc = p.text if p.text is not None else dumps(p.statement)
    if holds_nul(doc):
        raise BadRequest(f"statement {p.id}: holds the NUL character \\u0000, which cannot be stored")
    return doc


def stamped_ahead(p: Prepared, stored: datetime) -> Prepared:
    """A statement that keeps ``stored`` as it will be written, with its JSON text and index
    keys: made while its dict is fresh in the processor's cache, not in the transaction a
    batch or two later."""
    p.kept_stored = stored
    stamped = stamped_copy(p, stored)
    stamped.text = dumps(stamped.statement)
    stamped.keys = keys_of(stamped)
    return stamped


def stamped_copy(p: Prepared, stored: datetime, when: str | None = None) -> Prepared:
    """A copy with ``stored`` filled in, and ``timestamp`` where the statement left it to the LRS.
    ``when``: ``stored`` formatted, once for a whole batch."""
    if p.kept_stored is not None:
        stored, when = p.kept_stored, None
    when = when or format_timestamp(stored)
    timestamp = p.timestamp
    if not p.timestamp_given:
        timestamp = stored
    # A shallow copy of the dataclass: dataclasses.replace costs four times as much, which a
    # batch of a thousand statements notices.
    copy = object.__new__(Prepared)
    statement = {**p.statement, "stored": when}
    if not p.timestamp_given:
        statement["timestamp"] = when
    copy.__dict__.update(p.__dict__, _statement=statement, timestamp=timestamp)
    return copy


async def _inherited_index(
    conn: AsyncConnection, store_id: int, batch: list[Prepared]
) -> list[dict[str, bool]]:
    """Each statement's index rows (key: related), in the batch's order; one whose object is a
    StatementRef also matches every filter its target matches."""
    own = [p.keys if p.keys is not None else keys_of(p) for p in batch]
    if all(p.refers_to is None for p in batch):
        return own
    in_batch = {p.id: n for n, p in enumerate(batch)}
    wanted = {p.refers_to for p in batch if p.refers_to is not None} - set(in_batch)
    stored_index: dict[uuid.UUID, dict[str, bool]] = {}
    if wanted:
        rows = await conn.execute(_TARGETS, {"store": store_id, "ids": list(wanted)})
        for row in rows:
            index = stored_index.setdefault(row.id, {})
            if row.key is not None:
                index[row.key] = row.related
    out: list[dict[str, bool]] = []
    for p, index in zip(batch, own, strict=True):
        if p.refers_to is not None:
            index = dict(index)
            target = in_batch.get(p.refers_to)
            targets = own[target] if target is not None else stored_index.get(p.refers_to, {})
            for key, rel in targets.items():
                if not rel:
                    index[key] = False
                else:
                    index.setdefault(key, True)
        out.append(index)
    return out


def keys_of(p: Prepared) -> dict[str, bool]:
    """A prepared statement's own index rows: key, and whether it is only a related match."""
    return {index_key(*found): rel for found, rel in p.index.items()}


async def _check_raced(conn: AsyncConnection, store_id: int, lost: list[Prepared]) -> None:
    """Statements another transaction stored first, between our lookup and our insert."""
    rows = await conn.execute(
        text(
            "SELECT id, statement FROM statements WHERE store_id = :store AND id = ANY(CAST(:ids AS uuid[]))"
        ),
        {"store": store_id, "ids": [p.id for p in lost]},
    )
    stored = {r.id: r.statement for r in rows}
    for p in lost:
        if not same_statement(stored[p.id], p):
            raise Conflict(f"statement {p.id} already exists with different content")


# --- reads ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Found:
    statement: str  # JSON text, as stored
    stored: datetime


async def get_one(
    conn: AsyncConnection,
    store_id: int,
    statement_id: uuid.UUID,
    *,
    voided: bool,
    credential: str | None = None,
) -> Found | None:
    """The statement with this id: only a voided one when ``voided``, only a live one otherwise."""
    row = (
        await conn.execute(
            text(
                "SELECT statement::text AS doc, stored, voided, credential FROM statements"
                " WHERE store_id = :store AND id = :id"
            ),
            {"store": store_id, "id": statement_id},
        )
    ).one_or_none()
    if row is None or row.voided != voided:
        return None
    if credential is not None and row.credential != credential:
        return None
    return Found(row.doc, row.stored)


@dataclass(frozen=True)
class Page:
    listed: bytes  # the statements' JSON texts joined by commas: the inside of a JSON array
    last_seq: int | None
    more: bool
    latest_stored: datetime | None


async def query(
    conn: AsyncConnection, store_id: int, q: StatementQuery, credential: str | None = None
) -> Page:
    """One page of a statement query, in keyset order on ``seq``."""
    params: dict[str, Any] = {"store": store_id, "limit": q.limit}
    where = ["s.store_id = :store", "NOT s.voided"]
    order = "ASC" if q.ascending else "DESC"
    filters = q.filters()
    source = "statements s"
    seq_col = "s.seq"
    if filters:
        # The most selective filter drives the scan through the index, in seq order.
        first, first_related = filters[0]
        first_key = index_key(*first)
        source = "statement_index f JOIN statements s ON s.store_id = f.store_id AND s.seq = f.seq"
        where.append("f.store_id = :store AND f.key = CAST(:k0 AS uuid)")
        if not first_related:
            where.append("NOT f.related")
        params["k0"] = first_key
        seq_col = "f.seq"
        for n, (key, rel) in enumerate(filters[1:], start=1):
            params[f"k{n}"] = index_key(*key)
            where.append(
                "EXISTS (SELECT 1 FROM statement_index i WHERE i.store_id = s.store_id"
                f" AND i.key = CAST(:k{n} AS uuid) AND i.seq = s.seq{'' if rel else ' AND NOT i.related'})"
            )
    if q.after is not None:
        where.append(f"{seq_col} {'>' if q.ascending else '<'} :after")
        params["after"] = q.after
    if q.ceiling is not None:
        where.append(f"{seq_col} <= :ceiling")
        params["ceiling"] = q.ceiling
    if q.since is not None:
        where.append("s.stored > :since")
        params["since"] = q.since
    if q.until is not None:
        where.append("s.stored <= :until")
        params["until"] = q.until
    if credential is not None:
        where.append("s.credential = :credential")
        params["credential"] = credential
    # One row past the page says whether there is more. PostgreSQL joins the page's texts
    # and sends them as one UTF-8 value, which the worker writes out as it is: against a row
    # and a str per statement, a page of 100 costs the worker 0.4 to 0.9 ms less CPU and
    # PostgreSQL 0.15 (its backend alone) to 0.55 ms more (bench/results/queries-1m-rows.md).
    last = "max" if q.ascending else "min"
    sql = (
        "SELECT convert_to(string_agg(p.doc, ',' ORDER BY p.n) FILTER (WHERE p.n <= :limit), 'UTF8')"
        f" AS listed, count(*) > :limit AS more, {last}(p.seq) FILTER (WHERE p.n <= :limit) AS last_seq,"
        " max(p.stored) FILTER (WHERE p.n <= :limit) AS latest_stored"
        f" FROM (SELECT s.seq, s.stored, s.statement::text AS doc,"
        f" row_number() OVER (ORDER BY {seq_col} {order}) AS n FROM {source}"
        f" WHERE {' AND '.join(where)} ORDER BY {seq_col} {order} LIMIT :limit + 1) AS p"
    )
    row = (await conn.execute(text(sql), params)).one()
    return Page(
        listed=row.listed or b"",
        last_seq=row.last_seq,
        more=row.more,
        latest_stored=row.latest_stored,
    )


async def seq_bounds(conn: AsyncConnection, store_id: int, since: datetime | None) -> tuple[int, int] | None:
    """The first and last ``seq`` of the store's statements (stored after ``since``)."""
    row = (
        await conn.execute(
            text(
                "SELECT min(seq) AS first, max(seq) AS last FROM statements WHERE store_id = :store"
                " AND (CAST(:since AS timestamptz) IS NULL OR stored > CAST(:since AS timestamptz))"
            ),
            {"store": store_id, "since": since},
        )
    ).one()
    return None if row.first is None else (row.first, row.last)


# The statements of one seq range as COPY writes them: one JSON text a line, PostgreSQL
# doing all the work (a row at a time through the driver cost more in Python than in the
# database). Parameters: store, after seq, through seq, since (or NULL), until.
# (asyncpg puts the parameters in as literals and wraps the query in COPY ... TO STDOUT).
_EXPORT_RANGE = """
SELECT statement FROM statements
 WHERE store_id = $1 AND seq > $2 AND seq <= $3 AND stored <= $5
   AND ($4::timestamptz IS NULL OR stored > $4::timestamptz)
 ORDER BY seq
"""


async def export_range(
    conn: AsyncConnection,
    store_id: int,
    after_seq: int,
    through_seq: int,
    since: datetime | None,
    until: datetime,
) -> bytes:
    """The statements with ``seq`` in (after_seq, through_seq] stored in (since, until], in
    the order they were stored, as JSON Lines (voided ones included)."""
    chunks: list[bytes] = []

    async def sink(data: bytes) -> None:
        chunks.append(data)

    raw = await conn.get_raw_connection()
    await raw.driver_connection.copy_from_query(  # type: ignore[union-attr]
        _EXPORT_RANGE, store_id, after_seq, through_seq, since, until, output=sink
    )
    # COPY's text format escapes a backslash by doubling it; a JSON text has no tab, newline
    # or carriage return outside its strings (inside them they are written as escapes), so
    # halving the backslashes gives back the exact text.
    return b"".join(chunks).replace(b"\\\\", b"\\")


# A visibility bound, computed by the server that holds the data. On a read replica, whose
# own sessions say nothing of the primary's transactions, the read is given the bound it can
# prove instead (store/replicas.py), as this execution option.
CONSISTENT_THROUGH_OPTION = "lrs_consistent_through"
CONSISTENT_THROUGH_SQL = (
    "SELECT least(clock_timestamp(), min(xact_start)) AS through FROM pg_stat_activity"
    " WHERE datname = current_database() AND xact_start IS NOT NULL"
    " AND pid <> pg_backend_pid()"
)


WAL_POSITION_OPTION = "lrs_wal_position"


def _given(conn: AsyncConnection, option: str) -> Any:
    """A bound given to the read as an execution option (on a replica), else None."""
    options = conn.sync_connection.get_execution_options() if conn.sync_connection else {}
    return options.get(option)


@dataclass(frozen=True)
class Bounds:
    """What a query's first page fixes: the consistent-through time, the highest ``seq``
    the query may show, and the WAL position the data reflects."""

    through: datetime
    ceiling: int
    replayed: int


async def first_page_bounds(conn: AsyncConnection) -> Bounds:
    """The bounds of a query's first page, read together in one round trip (and so from one
    snapshot). On a replica the time and position are those given as execution options."""
    given_through = _given(conn, CONSISTENT_THROUGH_OPTION)
    given_position = _given(conn, WAL_POSITION_OPTION)
    columns = ["(SELECT last_value FROM statement_seq) AS ceiling"]
    source = ""
    if given_through is None:
        columns.append("s.through")
        source = f" FROM ({CONSISTENT_THROUGH_SQL}) AS s"
    if given_position is None:
        # Read in the outer query, after the time: as in replicas.primary_position.
        columns.append("pg_current_wal_lsn() - '0/0'::pg_lsn AS position")
    row = (await conn.execute(text(f"SELECT {', '.join(columns)}{source}"))).one()
    return Bounds(
        through=given_through if given_through is not None else row.through,
        ceiling=int(row.ceiling),
        replayed=int(given_position if given_position is not None else row.position),
    )


async def consistent_through(conn: AsyncConnection) -> datetime:
    """A time before which every statement that will ever be stored is already visible.

    ``stored`` is its transaction's start time, so no statement still being written can have
    a ``stored`` earlier than the oldest open transaction.
    """
    given = _given(conn, CONSISTENT_THROUGH_OPTION)
    if given is not None:
        return given  # type: ignore[no-any-return]
    through: datetime = (await conn.execute(text(CONSISTENT_THROUGH_SQL))).scalar_one()
    return through


# --- removal (erasure, retention) -----------------------------------------------------------


@dataclass(frozen=True)
class Held:
    """A stored statement, parsed, with what removing it needs."""

    seq: int
    id: uuid.UUID
    stored: datetime
    voided: bool
    credential: str
    statement: dict[str, Any]


def _held(rows: Any) -> list[Held]:
    return [Held(r.seq, r.id, r.stored, r.voided, r.credential, orjson.loads(r.doc)) for r in rows]


async def mentioning(conn: AsyncConnection, store_id: int, agent_keys: list[str]) -> list[Held]:
    """Every statement, voided or not, found under any of these agents (IFI keys) in the
    filter index, directly or as related: so also those referring to one of theirs."""
    rows = await conn.execute(
        text("""
        SELECT s.seq, s.id, s.stored, s.voided, s.credential, s.statement::text AS doc
          FROM statements s
         WHERE s.store_id = :store AND s.seq IN (
               SELECT i.seq FROM statement_index i
                WHERE i.store_id = :store AND i.key = ANY(CAST(:keys AS uuid[])))
         ORDER BY s.seq
        """),
        {"store": store_id, "keys": [index_key("agent", k) for k in agent_keys]},
    )
    return _held(rows)


async def by_ids(conn: AsyncConnection, store_id: int, ids: list[uuid.UUID]) -> list[Held]:
    rows = await conn.execute(
        text(
            "SELECT seq, id, stored, voided, credential, statement::text AS doc FROM statements"
            " WHERE store_id = :store AND id = ANY(CAST(:ids AS uuid[]))"
        ),
        {"store": store_id, "ids": ids},
    )
    return _held(rows)


async def stored_before(conn: AsyncConnection, store_id: int, cutoff: datetime, limit: int) -> list[Held]:
    """The store's oldest statements stored before ``cutoff``, at most ``limit``."""
    rows = await conn.execute(
        text(
            "SELECT seq, id, stored, voided, credential, statement::text AS doc FROM statements"
            " WHERE store_id = :store AND stored < :cutoff ORDER BY stored, seq LIMIT :limit"
        ),
        {"store": store_id, "cutoff": cutoff, "limit": limit},
    )
    return _held(rows)


async def count_stored_before(
    conn: AsyncConnection, store_id: int, cutoff: datetime
) -> tuple[int, datetime | None]:
    """How many statements were stored before ``cutoff``, and the oldest one's ``stored``."""
    row = (
        await conn.execute(
            text(
                "SELECT count(*) AS n, min(stored) AS oldest FROM statements"
                " WHERE store_id = :store AND stored < :cutoff"
            ),
            {"store": store_id, "cutoff": cutoff},
        )
    ).one()
    return int(row.n), row.oldest


async def oldest_stored(conn: AsyncConnection, store_id: int) -> datetime | None:
    """The ``stored`` of the store's oldest statement (None: it has none)."""
    sql = text("SELECT min(stored) FROM statements WHERE store_id = :store")
    found: datetime | None = (await conn.execute(sql, {"store": store_id})).scalar_one()
    return found


async def delete(conn: AsyncConnection, store_id: int, rows: list[tuple[int, list[str]]]) -> int:
    """Delete statements by seq with their filter-index rows, each given by its keys (no
    index leads from a seq to its rows)."""
    if not rows:
        return 0
    keys = [key for _, row_keys in rows for key in row_keys]
    seqs = [seq for seq, row_keys in rows for _ in row_keys]
    if keys:
        await conn.execute(
            text(
                "DELETE FROM statement_index WHERE store_id = :store AND (key, seq) IN"
                " (SELECT * FROM unnest(CAST(:keys AS uuid[]), CAST(:seqs AS bigint[])))"
            ),
            {"store": store_id, "keys": keys, "seqs": seqs},
        )
    result = await conn.execute(
        text("DELETE FROM statements WHERE store_id = :store AND seq = ANY(CAST(:seqs AS bigint[]))"),
        {"store": store_id, "seqs": [seq for seq, _ in rows]},
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def replace_content(
    conn: AsyncConnection, store_id: int, changed: list[tuple[int, dict[str, Any]]]
) -> None:
    """Store new content for statements that keep their id and seq (a redaction)."""
    if changed:
        await conn.execute(
            text(
                "UPDATE statements s SET statement = u.doc"
                " FROM unnest(CAST(:seqs AS bigint[]), CAST(:docs AS json[])) AS u(seq, doc)"
                " WHERE s.store_id = :store AND s.seq = u.seq"
            ),
            {"store": store_id, "seqs": [seq for seq, _ in changed], "docs": [dumps(d) for _, d in changed]},
        )


async def unindex_agents(conn: AsyncConnection, store_id: int, agent_keys: list[str]) -> int:
    """Drop every filter-index row of these agents (IFI keys), whatever statement holds it."""
    result = await conn.execute(
        text("DELETE FROM statement_index WHERE store_id = :store AND key = ANY(CAST(:keys AS uuid[]))"),
        {"store": store_id, "keys": [index_key("agent", k) for k in agent_keys]},
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def index_keys(statement: dict[str, Any], target: dict[str, Any] | None = None) -> list[str]:
    """The filter-index keys a stored statement is held under: its own, and, when its object
    is a StatementRef, those of the statement it refers to (``target``, when still stored)."""
    keys = {index_key(*found) for found in index_of(statement)}
    if target is not None:
        keys |= {index_key(*found) for found in index_of(target)}
    return sorted(keys)
