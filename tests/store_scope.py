"""Every query that reads or writes a store-scoped table must be held to stores by a
condition on that table's ``store_id``, so that it stays a single-shard query when the
tables are distributed by store (docs/SCALING.md).

This module is a pytest plugin (``-p tests.store_scope`` in pyproject.toml). It has every
server, CLI and in-process app the tests start record the SQL it runs (``LRS_SQL_TRACE_DIR``),
then parses each distinct statement with PostgreSQL's own parser (pglast) when the session
ends, and fails the run if a store-scoped table in it is not tied to a store:

- by ``store_id = <parameter or constant>``, ``store_id = ANY(...)`` or ``store_id IN (...)``,
  as a top-level conjunct of its WHERE or JOIN condition;
- or by ``a.store_id = b.store_id`` with a table that is tied (co-located join);
- or as the target of an INSERT that gives ``store_id``.

Subqueries and CTEs are checked on their own; a row source made of one counts as tied, and
so does a column of an enclosing query (correlation). Installation-wide questions are listed
in ``INSTALLATION_WIDE`` with the reason.

What goes to the driver past SQLAlchemy is not recorded: the export's COPY
(``store.statements.export_range``) and LISTEN. tests/test_store_scoped_sql.py still checks
that every SQL text in the source names ``store_id``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pglast import ast, parse_sql
from pglast.enums import A_Expr_Kind, BoolExprType, SubLinkType
from pglast.parser import ParseError

from lrs.store.schema import metadata

# Credentials carry their store but are found by key before the store is known (HTTP Basic):
# they are a reference table, replicated to every node, like stores and the audit log.
# Forwarding rules and pull sources are the same kind of small configuration, found by id by
# the installation's one background worker.
# Region membership is read by region, across stores: small, and a reference table too.
REFERENCE_TABLES = {"credentials", "forward_rules", "pull_sources", "region_members"}
STORE_SCOPED = frozenset(
    name for name, t in metadata.tables.items() if "store_id" in t.c and name not in REFERENCE_TABLES
)

# (a fragment of the SQL text, why it need not be held to one store)
INSTALLATION_WIDE = [
    ("DELETE FROM rollup_queue WHERE id = ANY", "queue ids are unique installation-wide"),
    ("FROM rollup_queue WHERE id > ", "the worker takes or reads ahead the oldest rows of every store"),
    ("min(stored) AS oldest", "the rollup backlog of the installation, for /metrics"),
    ("'admin' = ANY(scopes)", "whether the installation has any admin credential"),
    ("LOCK TABLE analytics_hourly", "a table lock, not a query"),
]


def _walk(node: Any) -> Iterator[Any]:
    """Every node below ``node`` (and itself), depth first."""
    if isinstance(node, tuple | list):
        for item in node:
            yield from _walk(item)
    elif isinstance(node, ast.Node):
        yield node
        for name in type(node).__slots__:
            yield from _walk(getattr(node, name, None))


def _conjuncts(condition: Any) -> Iterator[Any]:
    if isinstance(condition, ast.BoolExpr) and condition.boolop == BoolExprType.AND_EXPR:
        for arg in condition.args:
            yield from _conjuncts(arg)
    elif condition is not None:
        yield condition


def _unwrap(expr: Any) -> Any:
    while isinstance(expr, ast.TypeCast):
        expr = expr.arg
    return expr


def _store_column(expr: Any) -> str | None:
    """The qualifier of a ``store_id`` column reference ("" when unqualified), else None."""
    expr = _unwrap(expr)
    if not isinstance(expr, ast.ColumnRef):
        return None
    names = [f.sval for f in expr.fields if isinstance(f, ast.String)]
    if not names or names[-1] != "store_id":
        return None
    return names[-2] if len(names) >= 2 else ""


def _fixed(expr: Any) -> bool:
    """A value that does not come from a row of this query: a parameter, a constant, an
    array or list of them, or a subquery (checked on its own)."""
    expr = _unwrap(expr)
    if isinstance(expr, ast.ParamRef | ast.A_Const | ast.SubLink):
        return True
    if isinstance(expr, ast.A_ArrayExpr):
        return all(_fixed(e) for e in expr.elements or ())
    if isinstance(expr, tuple | list):
        return all(_fixed(e) for e in expr)
    return False


class _Scope:
    """One SELECT, UPDATE or DELETE: its row sources and the conditions that tie them."""

    def __init__(self) -> None:
        self.tables: dict[str, str] = {}  # alias -> store-scoped table
        self.others: set[str] = set()  # aliases of every other row source
        self.functions: set[str] = set()  # of those, set-returning functions (unnest of a list)
        self.conditions: list[Any] = []

    def add_from(self, item: Any) -> None:
        if isinstance(item, ast.RangeVar):
            alias = item.alias.aliasname if item.alias else item.relname
            if item.relname in STORE_SCOPED:
                self.tables[alias] = item.relname
            else:
                self.others.add(alias)
        elif isinstance(item, ast.JoinExpr):
            self.add_from(item.larg)
            self.add_from(item.rarg)
            self.conditions.extend(_conjuncts(item.quals))
        elif isinstance(item, ast.RangeSubselect | ast.RangeFunction) and item.alias:
            self.others.add(item.alias.aliasname)
            if isinstance(item, ast.RangeFunction):
                self.functions.add(item.alias.aliasname)

    def fixed(self, expr: Any) -> bool:
        """``_fixed``, or a column of a function in FROM (``unnest(:stores) AS u(id)``)."""
        expr = _unwrap(expr)
        if isinstance(expr, ast.ColumnRef) and len(expr.fields) == 2:
            return isinstance(expr.fields[0], ast.String) and expr.fields[0].sval in self.functions
        return _fixed(expr)

    def untied(self) -> list[str]:
        if not self.tables:
            return []
        tied: set[str] = set()
        links: list[tuple[str, str]] = []
        everything = set(self.tables) | self.others

        def aliases(qualifier: str) -> list[str]:
            # Unqualified, PostgreSQL allows it only where one row source has the column.
            return list(self.tables) if qualifier == "" else [qualifier]

        for cond in self.conditions:
            if isinstance(cond, ast.A_Expr) and cond.kind in (
                A_Expr_Kind.AEXPR_OP,
                A_Expr_Kind.AEXPR_OP_ANY,
                A_Expr_Kind.AEXPR_IN,
            ):
                if [n.sval for n in cond.name] != ["="]:
                    continue
                left, right = _store_column(cond.lexpr), _store_column(cond.rexpr)
                if left is not None and right is not None:
                    links.extend((a, b) for a in aliases(left) for b in aliases(right))
                elif left is not None and self.fixed(cond.rexpr):
                    tied.update(aliases(left))
                elif right is not None and self.fixed(cond.lexpr):
                    tied.update(aliases(right))
            elif isinstance(cond, ast.SubLink) and cond.subLinkType == SubLinkType.ANY_SUBLINK:
                column = _store_column(cond.testexpr)
                if column is not None:
                    tied.update(aliases(column))
        # Row sources that are not store-scoped tables (subqueries, CTEs, functions) are
        # checked on their own; a name outside this scope is an enclosing query's.
        tied.update(self.others)
        for a, b in links:
            if a not in everything:
                tied.add(a)
            if b not in everything:
                tied.add(b)
        changed = True
        while changed:
            changed = False
            for a, b in links:
                if (a in tied) != (b in tied):
                    tied.update((a, b))
                    changed = True
        return sorted(self.tables[a] for a in self.tables if a not in tied)


def _scopes(statement: Any) -> Iterator[tuple[str, _Scope]]:
    """(kind, scope) of every SELECT, UPDATE and DELETE in the statement, nested ones too."""
    for node in _walk(statement):
        scope = _Scope()
        if isinstance(node, ast.SelectStmt):
            for item in node.fromClause or ():
                scope.add_from(item)
            scope.conditions.extend(_conjuncts(node.whereClause))
            yield "SELECT", scope
        elif isinstance(node, ast.UpdateStmt | ast.DeleteStmt):
            scope.add_from(node.relation)
            more = node.fromClause if isinstance(node, ast.UpdateStmt) else node.usingClause
            for item in more or ():
                scope.add_from(item)
            scope.conditions.extend(_conjuncts(node.whereClause))
            yield type(node).__name__[:6].upper(), scope


def violations(sql: str) -> list[str]:
    """The store-scoped tables that ``sql`` reads or writes without holding them to stores."""
    if any(fragment in sql for fragment, _ in INSTALLATION_WIDE):
        return []
    found = []
    try:
        parsed = parse_sql(sql)
    except ParseError as exc:
        # PostgreSQL refused it too (the test that sent it failed): a finding, not a crash
        # that would hide the session's summary.
        return [f"SQL that cannot be parsed ({exc})"]
    for raw in parsed:
        statement = raw.stmt
        for node in _walk(statement):
            if (
                isinstance(node, ast.InsertStmt)
                and node.relation.relname in STORE_SCOPED
                and node.cols  # without a column list, it gives every column
                and "store_id" not in {c.name for c in node.cols}
            ):
                found.append(f"INSERT INTO {node.relation.relname} without store_id")
        for kind, scope in _scopes(statement):
            found.extend(f"{kind} on {table} without a store_id condition" for table in scope.untied())
    return found


def traced_sql(directory: Path) -> set[str]:
    """Every distinct SQL text recorded in ``directory`` (one JSON string per line)."""
    found: set[str] = set()
    for path in directory.glob("*.jsonl"):
        for line in path.read_text().splitlines():
            if line.strip():
                found.add(json.loads(line))
    return found


_OWN_DIR: tempfile.TemporaryDirectory[str] | None = None


def pytest_configure(config: pytest.Config) -> None:
    """Have every process the tests start record its SQL (they inherit the environment)."""
    global _OWN_DIR
    if "LRS_SQL_TRACE_DIR" not in os.environ:
        _OWN_DIR = tempfile.TemporaryDirectory(prefix="lrs-sql-")
        os.environ["LRS_SQL_TRACE_DIR"] = _OWN_DIR.name


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when any query the tests made is not held to stores."""
    directory = Path(os.environ["LRS_SQL_TRACE_DIR"])
    problems = []
    texts = traced_sql(directory)
    for sql in sorted(texts):
        for problem in violations(sql):
            problems.append(f"{problem}:\n    {' '.join(sql.split())[:400]}")
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"store_id check: {len(texts)} distinct SQL statements the tests ran")
        for p in problems:
            reporter.write_line(p, red=True)
    if problems:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if _OWN_DIR is not None:
        _OWN_DIR.cleanup()
