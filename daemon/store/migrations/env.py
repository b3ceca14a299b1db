"""Alembic environment: migrations run on the connection the daemon hands in."""

from __future__ import annotations

from alembic import context

from daemon.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - always called through daemon.store.db.upgrade
    raise RuntimeError("run migrations with `orderflow db upgrade`")
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
