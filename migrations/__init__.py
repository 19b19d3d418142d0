"""The Alembic migrations (shipped in the package as ``lrs.migrations``)."""
