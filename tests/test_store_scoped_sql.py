"""Every SQL text that touches a store-scoped table names `store_id`, so that each stays a
single-shard query when the tables are distributed by store (docs/SCALING.md).

The SQL is read from the source: every string given to SQLAlchemy's ``text()`` (f-strings
with their fixed parts). Installation-wide questions are listed below with the reason; any
new one must be added here knowingly.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from lrs.store.schema import metadata

SRC = Path(__file__).resolve().parents[1] / "src" / "lrs"

# Credentials carry their store but are found by key before the store is known (HTTP Basic):
# they are a reference table, replicated to every node, like stores and the audit log.
# Forwarding rules and pull sources are the same kind of small configuration, found by id by
# the installation's one background worker.
REFERENCE_TABLES = {"credentials", "forward_rules", "pull_sources"}
STORE_SCOPED = sorted(
    (name for name, t in metadata.tables.items() if "store_id" in t.c and name not in REFERENCE_TABLES),
    key=len,
    reverse=True,
)

# (a fragment of the SQL text, why it need not name a store)
INSTALLATION_WIDE = [
    ("FROM rollup_queue ORDER BY id", "the worker takes the oldest queue rows of every store"),
    ("DELETE FROM rollup_queue WHERE id = ANY", "queue ids are unique installation-wide"),
    ("FROM rollup_queue WHERE id > :after", "the worker reads ahead the next queue rows of every store"),
    ("min(stored) AS oldest", "the rollup backlog of the installation, for /metrics"),
    ("'admin' = ANY(scopes)", "whether the installation has any admin credential"),
    ("LOCK TABLE analytics_hourly", "a table lock, not a query"),
]


def sql_texts() -> list[tuple[str, int, str]]:
    """(file, line, SQL) for every text() call in the package."""
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
    # Module-level constants such as _LOOKUP = text("""...""") are calls too; nothing else
    # builds SQL (the architecture test keeps sqlalchemy out of the other layers).
    return found


def tables_in(sql: str) -> set[str]:
    names = set()
    for table in STORE_SCOPED:
        if re.search(rf"\b(FROM|JOIN|UPDATE|INTO|USING)\s+{table}\b", sql, re.IGNORECASE):
            names.add(table)
    return names


def test_the_sql_is_found():
    texts = sql_texts()
    assert len(texts) > 40
    assert any("INSERT INTO statements" in sql for _, _, sql in texts)
    assert {"statements", "statement_index", "documents", "analytics_hourly"} <= set(STORE_SCOPED)


def test_every_store_scoped_query_names_store_id():
    missing = []
    for path, line, sql in sql_texts():
        if not tables_in(sql) or "store_id" in sql:
            continue
        if any(fragment in sql for fragment, _ in INSTALLATION_WIDE):
            continue
        missing.append(f"{path}:{line}: {' '.join(sql.split())[:120]}")
    assert missing == []


def test_the_check_catches_a_query_without_store_id():
    assert tables_in("SELECT * FROM statements WHERE id = :id") == {"statements"}
    assert "store_id" not in "SELECT * FROM statements WHERE id = :id"
