"""Alembic environment: runs on the connection `lrs.store.migrate` hands in."""

from __future__ import annotations

from alembic import context

from lrs.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations with `lrs migrate`, which supplies the connection")

context.configure(connection=connection, target_metadata=metadata, compare_type=True)
with context.begin_transaction():
    context.run_migrations()
