"""The active model version's pointer: read by every process, changed by activate and roll back."""

from __future__ import annotations

from sqlalchemy import update

from storage.tables import ActiveVersion, utcnow
from storage.transactions import Transactional

SLOT = "local"


class ActivePointer(Transactional):
    """One row; each call is one short transaction."""

    def get(self) -> tuple[str | None, bool]:
        """The active version's name, and whether any version was ever activated here."""
        with self._read() as db:
            row = db.get(ActiveVersion, SLOT)
            return row.version, row.activated_at is not None

    def set(self, name: str) -> None:
        """Make ``name`` the active version, for every process that reads the database."""
        with self._write() as db:
            db.execute(update(ActiveVersion).where(ActiveVersion.slot == SLOT)
                       .values(version=name, activated_at=utcnow()))
