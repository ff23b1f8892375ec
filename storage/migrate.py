"""Apply Alembic migrations at start-up, one process at a time."""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from storage.engine import make_engine, writer

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
# Any fixed number; every process of this service must use the same one.
PG_MIGRATION_LOCK = 724_113_001


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest revision.

    Several workers may start at once: Postgres serialises them with an advisory
    lock, SQLite with the write lock an immediate transaction takes; whoever comes
    second finds the schema current and does nothing.
    """
    config = _config()
    with writer(engine).begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PG_MIGRATION_LOCK})")
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    log.info("Database schema is at the newest revision")


def is_current(engine: Engine) -> bool:
    """True when the database's schema is at the newest revision (one query)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision() == _head()


@lru_cache(maxsize=1)
def _head() -> str:
    """The newest revision in migrations/."""
    return ScriptDirectory.from_config(_config()).get_current_head()


def _config() -> Config:
    """Alembic's configuration, pointing at migrations/."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def migrated_engine(database_url: str) -> Engine:
    """The engine every entry point uses: web workers, the training supervisor and its child, the CLI."""
    engine = make_engine(database_url)
    upgrade(engine)
    return engine
