"""Alembic environment for the warehouse. Run through ``vigil db migrate`` (vigil.storage.warehouse.migrate)."""

from alembic import context
from sqlalchemy import text

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=None, transaction_per_migration=False)
with context.begin_transaction():
    # Two processes migrating at once (scheduler + CLI) serialise here instead of racing DDL.
    connection.execute(text("SELECT pg_advisory_xact_lock(7431001)"))
    context.run_migrations()
