"""Alembic environment: the database URL comes from the one settings object."""

from __future__ import annotations

from logging.config import fileConfig

from sqlmodel import SQLModel

import services.domain.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from alembic import context
from services.infra.db import get_engine

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = SQLModel.metadata


def run_migrations_online() -> None:
    with get_engine().connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
