"""Alembic environment: always run in-process by :mod:`voicebot.db.migrate`, which hands over the connection
(no alembic.ini, no URL in a file)."""

from __future__ import annotations

from alembic import context

from voicebot.db.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters a table by copying it
)
with context.begin_transaction():
    context.run_migrations()
