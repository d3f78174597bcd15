"""Alembic's environment for the jobs database: run on the connection the service (or
``python -m jobs_service.schema``) hands over, against the service's models."""

from __future__ import annotations

from alembic import context

from jobs_service.db import Base

connection = context.config.attributes["connection"]
# SQLite alters a table by making it again: batch mode does that for each migration
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
