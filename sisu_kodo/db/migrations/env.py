"""Alembic environment: runs the `app` schema migrations on the connection it is given."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    version_table_schema="app",
    transactional_ddl=True,
)
connection.execute(text("CREATE SCHEMA IF NOT EXISTS app"))
with context.begin_transaction():
    context.run_migrations()
