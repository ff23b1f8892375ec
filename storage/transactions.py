"""The base of the query classes: short read sessions and serialised write transactions."""

from __future__ import annotations

import threading
import weakref
from contextlib import contextmanager, nullcontext
from typing import Iterator

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from storage.engine import writer


class Transactional:
    """Safe to share between threads; every method is its own transaction."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._read = sessionmaker(engine, expire_on_commit=False)
        self._write_session = sessionmaker(writer(engine), expire_on_commit=False)
        self._write_lock = _sqlite_write_lock(engine) if engine.dialect.name == "sqlite" else nullcontext()

    @contextmanager
    def _write(self) -> Iterator[Session]:
        """A write transaction, committed on success."""
        with self._write_lock, self._write_session.begin() as db:
            yield db


# SQLite has one writer at a time: threads of this process queue on one lock per engine, cheaply,
# instead of polling for the database's lock against each other. Every Transactional on the engine shares it.
_WRITE_LOCKS: "weakref.WeakKeyDictionary[Engine, threading.RLock]" = weakref.WeakKeyDictionary()
_WRITE_LOCKS_GUARD = threading.Lock()


def _sqlite_write_lock(engine: Engine) -> threading.RLock:
    """The write lock of this process for ``engine``."""
    with _WRITE_LOCKS_GUARD:
        return _WRITE_LOCKS.setdefault(engine, threading.RLock())
