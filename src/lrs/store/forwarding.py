"""Forwarding rules, their outbox (the statements still to send) and dead letters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from lrs.jsontext import dumps


@dataclass(frozen=True)
class Rule:
    id: int
    store_id: int
    name: str
    endpoint: str
    version: str
    credentials: bytes  # encrypted
    filter: dict[str, Any]
    pseudonym_secret: bytes | None  # encrypted; None: statements go as stored
    pseudonym_home_page: str | None
    enabled: bool
    batch_size: int
    max_attempts: int
    attempts: int
    next_attempt: datetime
    last_error: str | None
    sent: int
    failed: int
    dead: int
    created: datetime
    pending: int = 0  # outbox rows
    oldest: datetime | None = None  # `stored` of the oldest statement still to send


_COLUMNS = """r.id, r.store_id, r.name, r.endpoint, r.version, r.credentials, r.filter,
    r.pseudonym_secret, r.pseudonym_home_page, r.enabled, r.batch_size, r.max_attempts, r.attempts,
    r.next_attempt, r.last_error, r.sent, r.failed, r.dead, r.created"""

# With how many statements wait, and since when (the oldest's `stored`).
_WITH_BACKLOG = f"""
SELECT {_COLUMNS}, b.pending, b.oldest
  FROM forward_rules r
  LEFT JOIN LATERAL (
      SELECT count(*) AS pending,
             (SELECT s.stored FROM forward_outbox o2 JOIN statements s
                  ON s.store_id = r.store_id AND s.seq = o2.seq
               WHERE o2.rule_id = r.id ORDER BY o2.seq LIMIT 1) AS oldest
        FROM forward_outbox o WHERE o.rule_id = r.id) b ON true
"""


def _rule(r: Any) -> Rule:
    return Rule(
        r.id,
        r.store_id,
        r.name,
        r.endpoint,
        r.version,
        bytes(r.credentials),
        r.filter,
        bytes(r.pseudonym_secret) if r.pseudonym_secret is not None else None,
        r.pseudonym_home_page,
        r.enabled,
        r.batch_size,
        r.max_attempts,
        r.attempts,
        r.next_attempt,
        r.last_error,
        r.sent,
        r.failed,
        r.dead,
        r.created,
        int(getattr(r, "pending", 0) or 0),
        getattr(r, "oldest", None),
    )


async def create(conn: AsyncConnection, store_id: int, values: dict[str, Any]) -> Rule:
    row = (
        await conn.execute(
            text(f"""
            INSERT INTO forward_rules AS r (store_id, name, endpoint, version, credentials, filter,
                   pseudonym_secret, pseudonym_home_page, enabled, batch_size, max_attempts)
            VALUES (:store, :name, :endpoint, :version, :credentials, CAST(:filter AS jsonb),
                    :pseudonym_secret, :pseudonym_home_page, :enabled, :batch_size, :max_attempts)
            RETURNING {_COLUMNS}
            """),
            {"store": store_id, **values, "filter": dumps(values["filter"])},
        )
    ).one()
    return _rule(row)


async def update(conn: AsyncConnection, rule_id: int, values: dict[str, Any]) -> Rule:
    """Change some of a rule's settings; a changed rule is tried again at once."""
    sets = ", ".join(f"{k} = CAST(:{k} AS jsonb)" if k == "filter" else f"{k} = :{k}" for k in values)
    params = {**values, "id": rule_id}
    if "filter" in values:
        params["filter"] = dumps(values["filter"])
    row = (
        await conn.execute(
            text(
                f"UPDATE forward_rules AS r SET {sets}, attempts = 0, next_attempt = now()"
                f" WHERE id = :id RETURNING {_COLUMNS}"
            ),
            params,
        )
    ).one()
    return _rule(row)


async def delete(conn: AsyncConnection, rule_id: int) -> None:
    await conn.execute(text("DELETE FROM forward_rules WHERE id = :id"), {"id": rule_id})


async def named(conn: AsyncConnection, store_id: int, name: str) -> Rule | None:
    row = (
        await conn.execute(
            text(f"{_WITH_BACKLOG} WHERE r.store_id = :store AND r.name = :name"),
            {"store": store_id, "name": name},
        )
    ).one_or_none()
    return None if row is None else _rule(row)


async def of_store(conn: AsyncConnection, store_id: int) -> list[Rule]:
    rows = await conn.execute(
        text(f"{_WITH_BACKLOG} WHERE r.store_id = :store ORDER BY r.name"), {"store": store_id}
    )
    return [_rule(r) for r in rows]


async def everywhere(conn: AsyncConnection) -> list[tuple[str, Rule]]:
    """Every rule of the installation with its store's name and its backlog (for metrics
    and health)."""
    rows = await conn.execute(
        text(
            f"SELECT w.*, s.name AS store FROM ({_WITH_BACKLOG}) w"
            " JOIN stores s ON s.id = w.store_id ORDER BY w.id"
        )
    )
    return [(r.store, _rule(r)) for r in rows]


async def filters(conn: AsyncConnection, store_id: int) -> list[tuple[int, dict[str, Any]]]:
    """The store's enabled rules' ids and filters: what a write matches its statements to."""
    rows = await conn.execute(
        text("SELECT id, filter FROM forward_rules WHERE store_id = :store AND enabled ORDER BY id"),
        {"store": store_id},
    )
    return [(r.id, r.filter) for r in rows]


async def enqueue(conn: AsyncConnection, rule_ids: list[int], seqs: list[int]) -> None:
    """Put (rule, seq) pairs in the outbox, in the writing transaction."""
    if rule_ids:
        await conn.execute(
            text(
                "INSERT INTO forward_outbox (rule_id, seq)"
                " SELECT * FROM unnest(CAST(:rules AS bigint[]), CAST(:seqs AS bigint[]))"
                " ON CONFLICT DO NOTHING"
            ),
            {"rules": rule_ids, "seqs": seqs},
        )


async def due(conn: AsyncConnection) -> list[Rule]:
    """Enabled rules with statements to send whose next attempt is due, least recently tried
    first."""
    rows = await conn.execute(
        text(f"""
        SELECT {_COLUMNS} FROM forward_rules r
         WHERE r.enabled AND r.next_attempt <= now()
           AND EXISTS (SELECT FROM forward_outbox o WHERE o.rule_id = r.id)
         ORDER BY r.next_attempt
        """)
    )
    return [_rule(r) for r in rows]


async def batch(conn: AsyncConnection, rule: Rule) -> list[tuple[int, str | None]]:
    """The next statements to send, oldest first: (seq, JSON as stored; None when the
    statement is gone)."""
    rows = await conn.execute(
        text("""
        SELECT o.seq, s.statement::text AS doc
          FROM forward_outbox o
          LEFT JOIN statements s ON s.store_id = :store AND s.seq = o.seq
         WHERE o.rule_id = :rule
         ORDER BY o.seq LIMIT :limit
        """),
        {"rule": rule.id, "store": rule.store_id, "limit": rule.batch_size},
    )
    return [(r.seq, r.doc) for r in rows]


async def sent(conn: AsyncConnection, rule_id: int, seqs: list[int], delivered: int) -> None:
    """The target took the batch: out of the outbox, counted, the rule healthy again."""
    await conn.execute(
        text("DELETE FROM forward_outbox WHERE rule_id = :rule AND seq = ANY(CAST(:seqs AS bigint[]))"),
        {"rule": rule_id, "seqs": seqs},
    )
    await conn.execute(
        text(
            "UPDATE forward_rules SET sent = sent + :n, attempts = 0, last_error = NULL,"
            " next_attempt = now() WHERE id = :rule"
        ),
        {"rule": rule_id, "n": delivered},
    )


async def failed(conn: AsyncConnection, rule_id: int, error: str, retry_after_seconds: float) -> None:
    await conn.execute(
        text(
            "UPDATE forward_rules SET attempts = attempts + 1, failed = failed + 1, last_error = :error,"
            " next_attempt = now() + make_interval(secs => :wait) WHERE id = :rule"
        ),
        {"rule": rule_id, "error": error, "wait": retry_after_seconds},
    )


async def bury(conn: AsyncConnection, rule_id: int, seqs: list[int], error: str, attempts: int) -> None:
    """The batch failed too often: into the dead letters, out of the way of the next."""
    await conn.execute(
        text(
            "INSERT INTO forward_dead (rule_id, seqs, error, attempts)"
            " VALUES (:rule, CAST(:seqs AS bigint[]), :error, :attempts)"
        ),
        {"rule": rule_id, "seqs": seqs, "error": error, "attempts": attempts},
    )
    await conn.execute(
        text("DELETE FROM forward_outbox WHERE rule_id = :rule AND seq = ANY(CAST(:seqs AS bigint[]))"),
        {"rule": rule_id, "seqs": seqs},
    )
    await conn.execute(
        text(
            "UPDATE forward_rules SET dead = dead + 1, attempts = 0, last_error = :error,"
            " next_attempt = now() WHERE id = :rule"
        ),
        {"rule": rule_id, "error": error},
    )


@dataclass(frozen=True)
class Dead:
    id: int
    rule: str
    statements: int
    first_seq: int
    last_seq: int
    error: str
    attempts: int
    created: datetime


async def dead(conn: AsyncConnection, rule_id: int) -> list[Dead]:
    rows = await conn.execute(
        text("""
        SELECT d.id, r.name, cardinality(d.seqs) AS n, d.seqs[1] AS first_seq,
               d.seqs[cardinality(d.seqs)] AS last_seq, d.error, d.attempts, d.created
          FROM forward_dead d JOIN forward_rules r ON r.id = d.rule_id
         WHERE d.rule_id = :rule ORDER BY d.id
        """),
        {"rule": rule_id},
    )
    return [Dead(r.id, r.name, r.n, r.first_seq, r.last_seq, r.error, r.attempts, r.created) for r in rows]


async def revive(conn: AsyncConnection, rule_id: int, dead_id: int) -> bool:
    """A dead letter's statements back into the outbox (sent again in seq order)."""
    row = (
        await conn.execute(
            text("DELETE FROM forward_dead WHERE id = :id AND rule_id = :rule RETURNING seqs"),
            {"id": dead_id, "rule": rule_id},
        )
    ).one_or_none()
    if row is None:
        return False
    await enqueue(conn, [rule_id] * len(row.seqs), list(row.seqs))
    await conn.execute(
        text("UPDATE forward_rules SET next_attempt = now(), attempts = 0 WHERE id = :rule"),
        {"rule": rule_id},
    )
    return True


async def drop(conn: AsyncConnection, rule_id: int, dead_id: int) -> bool:
    found = await conn.execute(
        text("DELETE FROM forward_dead WHERE id = :id AND rule_id = :rule RETURNING id"),
        {"id": dead_id, "rule": rule_id},
    )
    return found.one_or_none() is not None


async def waiting(conn: AsyncConnection, store_id: int, seqs: list[int]) -> set[tuple[int, int]]:
    """Which of these statements still wait to be sent, as (rule id, seq): in an outbox or
    among the dead letters of one of the store's rules."""
    rows = await conn.execute(
        text("""
        SELECT o.rule_id, o.seq FROM forward_outbox o JOIN forward_rules r ON r.id = o.rule_id
         WHERE r.store_id = :store AND o.seq = ANY(CAST(:seqs AS bigint[]))
        UNION
        SELECT d.rule_id, s.seq FROM forward_dead d JOIN forward_rules r ON r.id = d.rule_id,
               unnest(d.seqs) AS s(seq)
         WHERE r.store_id = :store AND s.seq = ANY(CAST(:seqs AS bigint[]))
        """),
        {"store": store_id, "seqs": seqs},
    )
    return {(r.rule_id, r.seq) for r in rows}


async def forget(conn: AsyncConnection, store_id: int, seqs: list[int]) -> None:
    """Take statements that are gone out of the store's outboxes and dead letters (a dead
    letter left with none is dropped)."""
    params = {"store": store_id, "seqs": seqs}
    await conn.execute(
        text(
            "DELETE FROM forward_outbox o USING forward_rules r WHERE r.id = o.rule_id"
            " AND r.store_id = :store AND o.seq = ANY(CAST(:seqs AS bigint[]))"
        ),
        params,
    )
    await conn.execute(
        text("""
        UPDATE forward_dead d
           SET seqs = ARRAY(SELECT s FROM unnest(d.seqs) AS s WHERE s <> ALL(CAST(:seqs AS bigint[])))
          FROM forward_rules r
         WHERE r.id = d.rule_id AND r.store_id = :store AND d.seqs && CAST(:seqs AS bigint[])
        """),
        params,
    )
    await conn.execute(
        text(
            "DELETE FROM forward_dead d USING forward_rules r WHERE r.id = d.rule_id"
            " AND r.store_id = :store AND cardinality(d.seqs) = 0"
        ),
        params,
    )
