"""Named leases in the database: one holder at a time across processes and replicas.

A holder renews its lease while it works; if it dies, the lease expires and the
next process may take it.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from storage.tables import Lease, utcnow
from storage.transactions import Transactional

TRAINING = "training"


class Leases(Transactional):
    """Take, renew and release leases; each call is one short write transaction."""

    def acquire(self, holder: str, ttl_s: float, name: str = TRAINING) -> bool:
        """Take the lease unless a holder (this one included) has renewed it in time."""
        now = utcnow()
        with self._write() as db:
            # FOR UPDATE on Postgres; SQLite's immediate transaction already excludes other writers.
            lease = db.scalars(select(Lease).where(Lease.name == name).with_for_update()).one()
            if lease.holder is not None and lease.expires_at > now:
                return False
            lease.holder, lease.expires_at = holder, now + timedelta(seconds=ttl_s)
            return True

    def renew(self, holder: str, ttl_s: float, name: str = TRAINING) -> bool:
        """Extend the lease; False when it is no longer ours."""
        with self._write() as db:
            result = db.execute(update(Lease).where(Lease.name == name, Lease.holder == holder)
                                .values(expires_at=utcnow() + timedelta(seconds=ttl_s)))
            return result.rowcount == 1

    def release(self, holder: str, name: str = TRAINING) -> None:
        """Give the lease up, if we still hold it."""
        with self._write() as db:
            db.execute(update(Lease).where(Lease.name == name, Lease.holder == holder)
                       .values(holder=None, expires_at=utcnow()))

    def holder(self, name: str = TRAINING) -> str | None:
        """Who holds the lease now, or None when it is free or expired."""
        with self._read() as db:
            lease = db.get(Lease, name)
            return lease.holder if lease and lease.holder and lease.expires_at > utcnow() else None
