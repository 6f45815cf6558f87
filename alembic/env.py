"""Alembic environment: the database URL comes from the one settings object."""

from __future__ import annotations

from logging.config import fileConfig

from sqlalchemy import Connection
from sqlmodel import SQLModel

import services.domain.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from alembic import context
from services.infra.db import get_engine

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = SQLModel.metadata


def _foreign_keys(connection: Connection, on: bool) -> None:
    """SQLite's own procedure for schema changes: a batch migration rebuilds a table (copy, drop,
    rename), and with foreign keys enforced, dropping a table that other rows point at (a job's
    metrics, events, tags) fails. The pragma only takes effect outside a transaction."""
    connection.exec_driver_sql(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")
    connection.commit()


def run_migrations_online() -> None:
    with get_engine().connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            _foreign_keys(connection, on=False)
        try:
            context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=sqlite)
            with context.begin_transaction():
                context.run_migrations()
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise RuntimeError(f"the migration left rows pointing at nothing: {broken[:5]}")
        finally:
            if sqlite:
                # The connection goes back to the pool: enforcement on again, as the engine set it.
                _foreign_keys(connection, on=True)


run_migrations_online()
