"""The layers of docs/ARCHITECTURE.md, checked on every module's imports (function-level
imports included), so that they cannot rot."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "lrs"

# (modules, what they must never import). A rule names module prefixes.
RULES: list[tuple[tuple[str, ...], tuple[str, ...], str]] = [
    (
        ("lrs.xapi",),
        (
            "lrs.store",
            "lrs.ops",
            "lrs.api",
            "lrs.admin",
            "lrs.analytics",
            "lrs.cli",
            "lrs.config",
            "sqlalchemy",
            "fastapi",
            "starlette",
        ),
        "xapi/ is the protocol: pure, no I/O",
    ),
    (
        ("lrs.store",),
        ("lrs.ops", "lrs.api", "lrs.admin", "lrs.analytics", "lrs.cli", "fastapi", "starlette"),
        "store/ knows SQL and the protocol's types, nothing above it",
    ),
    (
        ("lrs.analytics.rollup",),
        ("lrs.store", "lrs.ops", "lrs.api", "sqlalchemy", "fastapi"),
        "what a statement contributes to the rollups is pure",
    ),
    (
        ("lrs.analytics.writes", "lrs.analytics.reads"),
        ("lrs.ops", "lrs.api", "lrs.admin", "lrs.cli", "fastapi", "starlette"),
        "the analytics SQL knows the store, nothing above it",
    ),
    (
        ("lrs.analytics.writes",),
        ("lrs.analytics.api", "lrs.analytics.metrics"),
        "the write side does not use the read side's answers",
    ),
    (
        ("lrs.analytics.reads",),
        ("lrs.analytics.writes",),
        "the read side never writes",
    ),
    (
        ("lrs.ops",),
        ("lrs.api", "lrs.admin", "lrs.cli", "lrs.analytics.api", "fastapi"),
        "use cases know nothing of HTTP or the command line",
    ),
    (
        ("lrs.api", "lrs.admin", "lrs.analytics.api"),
        (
            "sqlalchemy",
            "lrs.store.statements",
            "lrs.store.documents",
            "lrs.store.activities",
            "lrs.store.agents",
            "lrs.store.attachments",
            "lrs.store.credentials",
            "lrs.store.stores",
            "lrs.store.audit",
            "lrs.store.schema",
            "lrs.store.keys",
            "lrs.analytics.writes",
            "lrs.cli",
        ),
        "routers parse, call ops (or the analytics read side) and answer; never SQL",
    ),
    (
        ("lrs.cli",),
        (
            "sqlalchemy",
            "lrs.api",
            "lrs.admin",
            "lrs.store.statements",
            "lrs.store.credentials",
            "lrs.store.stores",
            "lrs.store.audit",
            "lrs.analytics",
        ),
        "the CLI parses arguments, calls ops and prints",
    ),
]

# analytics/api composes several reads in one read transaction, and names its connection type.
ALLOWED = {("lrs.analytics.api", "sqlalchemy.ext.asyncio")}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, name: str | None = None) -> set[str]:
    found: set[str] = set()
    package = (name or module_name(path)).rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package.split(".")[: len(package.split(".")) - node.level + 1], base])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


MODULES = sorted(SRC.rglob("*.py"))


def test_every_module_is_seen():
    names = {module_name(p) for p in MODULES}
    assert {
        "lrs.xapi.statements",
        "lrs.store.statements",
        "lrs.ops.statements",
        "lrs.api.statements",
    } <= names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_imports_follow_the_layers(path):
    name = module_name(path)
    broken = []
    for modules, forbidden, why in RULES:
        if not any(under(name, m) for m in modules):
            continue
        for imported in imports(path):
            for prefix in forbidden:
                if under(imported, prefix) and not any(
                    under(name, a) and under(imported, b) for a, b in ALLOWED
                ):
                    broken.append(f"{name} imports {imported}: {why}")
    assert broken == []


def test_the_rules_catch_a_breach(tmp_path):
    """A router that imports the statement store is caught (the checker itself works)."""
    fake = SRC / "api" / "statements.py"
    assert "lrs.store.statements" not in imports(fake)
    bad = tmp_path / "bad.py"
    bad.write_text("from lrs.store import statements\nimport sqlalchemy\n")
    found = imports(bad, "lrs.api.bad")
    assert "lrs.store.statements" in found and "sqlalchemy" in found
