"""Probes of the database for the health checks: whether it answers, and whether it takes a write."""

from __future__ import annotations

from sqlalchemy import update

from storage.tables import ActiveVersion
from storage.transactions import Transactional


class DatabaseHealth(Transactional):
    """The database behind one engine, probed; safe to share between threads."""

    def ping(self) -> None:
        """Raise when the database cannot be reached."""
        with self.engine.connect() as connection:
            connection.exec_driver_sql("SELECT 1")

    def check_writable(self) -> None:
        """Raise unless the database takes a write now (a reachable database can be read-only): a no-op
        update, rolled back."""
        with self._write_lock, self._write_session() as db:
            db.execute(update(ActiveVersion).values(version=ActiveVersion.version))
            db.rollback()
