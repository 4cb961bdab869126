"""Alembic environment: runs on the connection meterline hands it (see store/migrate.py)."""

from __future__ import annotations

from alembic import context

from meterline.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("meterline runs its migrations through `meterline db upgrade`")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
