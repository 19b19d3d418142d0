"""Queries on store-scoped tables are held to stores (docs/SCALING.md).

Two nets. The whole run: ``tests.store_scope`` checks every SQL statement any test made the
LRS run, parsed by PostgreSQL's parser, and fails the run on one that is not held to stores.
Here: the checker itself, the trace it reads, and a cheaper look at every SQL text in the
source, which also covers code no test reaches (it asks only that ``store_id`` is named).
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import httpx

from tests.factories import statement
from tests.harness import make_credential, running_server
from tests.store_scope import INSTALLATION_WIDE, STORE_SCOPED, traced_sql, violations

SRC = Path(__file__).resolve().parents[1] / "src" / "lrs"
# Longest first, so that "analytics_hourly" is not taken for a table called "analytics".
BY_LENGTH = sorted(STORE_SCOPED, key=len, reverse=True)


def sql_texts() -> list[tuple[str, int, str]]:
    """(file, line, SQL) for every text() call in the package (f-strings with their fixed
    parts)."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "text" and node.args):
                continue
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                sql = arg.value
            elif isinstance(arg, ast.JoinedStr):
                sql = "".join(v.value if isinstance(v, ast.Constant) else " {} " for v in arg.values)
            else:
                continue
            found.append((str(path.relative_to(SRC)), node.lineno, sql))
    return found


def tables_in(sql: str) -> set[str]:
    names = set()
    for table in BY_LENGTH:
        if re.search(rf"\b(FROM|JOIN|UPDATE|INTO|USING)\s+{table}\b", sql, re.IGNORECASE):
            names.add(table)
    return names


def test_every_store_scoped_sql_text_in_the_source_names_store_id():
    texts = sql_texts()
    assert len(texts) > 40
    assert any("INSERT INTO statements" in sql for _, _, sql in texts)
    missing = []
    for path, line, sql in texts:
        if not tables_in(sql) or "store_id" in sql:
            continue
        if any(fragment in sql for fragment, _ in INSTALLATION_WIDE):
            continue
        missing.append(f"{path}:{line}: {' '.join(sql.split())[:120]}")
    assert missing == []


def test_the_checker_accepts_queries_held_to_stores():
    assert {"statements", "statement_index", "documents", "analytics_hourly"} <= STORE_SCOPED
    held = [
        "SELECT * FROM statements WHERE store_id = $1 AND id = $2",
        "SELECT * FROM statements s WHERE s.store_id = $1::BIGINT",
        "SELECT * FROM analytics_activity WHERE store_id = ANY(CAST($1 AS bigint[]))",
        "SELECT * FROM documents WHERE store_id IN ($1, $2)",
        # A co-located join: one side held, the other tied to it.
        "SELECT * FROM statement_index i JOIN statements s ON s.store_id = i.store_id AND s.seq = i.seq"
        " WHERE i.store_id = $1",
        # Correlated: the inner table is tied to the outer query's.
        "SELECT * FROM statements s WHERE s.store_id = $1 AND EXISTS"
        " (SELECT 1 FROM attachments a WHERE a.store_id = s.store_id)",
        "SELECT u.id FROM unnest($1::bigint[]) AS u(id) JOIN retention_runs r ON r.store_id = u.id",
        "INSERT INTO statements (store_id, id, statement) VALUES ($1, $2, $3)",
        "UPDATE documents SET body = $1 WHERE store_id = $2 AND id = $3",
        "DELETE FROM analytics_hourly WHERE store_id = $1",
        "WITH w AS (SELECT * FROM analytics_hourly WHERE store_id = $1) SELECT * FROM w",
    ]
    assert [(sql, violations(sql)) for sql in held] == [(sql, []) for sql in held]


def test_the_checker_refuses_queries_not_held_to_stores():
    loose = {
        "SELECT * FROM statements WHERE id = $1": ["SELECT on statements without a store_id condition"],
        # Named, but not a condition on this table: in an OR, or only on the other table.
        "SELECT * FROM statements WHERE store_id = $1 OR id = $2": [
            "SELECT on statements without a store_id condition"
        ],
        "SELECT * FROM statement_index i JOIN statements s ON s.seq = i.seq WHERE i.store_id = $1": [
            "SELECT on statements without a store_id condition"
        ],
        "SELECT store_id, count(*) FROM analytics_progress GROUP BY store_id": [
            "SELECT on analytics_progress without a store_id condition"
        ],
        "SELECT * FROM stores s WHERE s.id IN (SELECT store_id FROM documents)": [
            "SELECT on documents without a store_id condition"
        ],
        "INSERT INTO documents (id, body) VALUES ($1, $2)": ["INSERT INTO documents without store_id"],
        "UPDATE statements SET voided = true WHERE id = $1": [
            "UPDATE on statements without a store_id condition"
        ],
        "DELETE FROM analytics_hourly": ["DELETE on analytics_hourly without a store_id condition"],
        # A text PostgreSQL cannot parse is a finding too (it used to crash the session's end).
        "SELEC * FROM statements": [
            'SQL that cannot be parsed (syntax error at or near "SELEC", at index 0)'
        ],
    }
    assert {sql: violations(sql) for sql in loose} == loose


def test_the_server_records_the_sql_it_runs(database_url: str, tmp_path: Path):
    """What the run-wide check reads: a server given LRS_SQL_TRACE_DIR writes each distinct
    statement it runs there, so a check that found nothing would not pass unseen."""
    cred = make_credential(database_url)
    with running_server(database_url, sql_trace_dir=str(tmp_path)) as srv:
        for _ in range(2):
            r = httpx.post(
                srv.xapi + "/statements",
                json=statement(),
                auth=cred.auth,
                headers={"X-Experience-API-Version": "2.0.0"},
            )
            assert r.status_code == 200, r.text
    texts = traced_sql(tmp_path)
    inserts = [sql for sql in texts if sql.lstrip().upper().startswith("INSERT INTO STATEMENTS")]
    assert len(inserts) == 1  # distinct texts: the second POST ran the same SQL
    assert all(violations(sql) == [] for sql in texts)
    files = list(tmp_path.glob("*.jsonl"))
    assert files and all(json.loads(line) for f in files for line in f.read_text().splitlines())
