"""Alembic environment: migrations run on the connection reelset hands over."""

from __future__ import annotations

from alembic import context

from reelset.storage.schema import metadata

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - reelset always passes its connection
    raise RuntimeError("reelset migrations run through `reelset db upgrade`, not the alembic CLI")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
