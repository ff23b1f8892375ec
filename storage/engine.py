"""Database URL normalisation, the pooled engine and SQLite pragmas."""

from __future__ import annotations

import logging
import os
import random
import sqlite3
import time
from pathlib import Path
from typing import Callable

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DisconnectionError, OperationalError

log = logging.getLogger(__name__)

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", ""}
EPHEMERAL_DIRS = ("/tmp", "/var/tmp", "/dev/shm")
SQLITE_BUSY_TIMEOUT_MS = 10_000


def normalise_url(raw: str) -> URL:
    """Turn a DATABASE_URL into the URL SQLAlchemy should use.

    Postgres URLs get the psycopg 3 driver, and TLS unless the host is local or
    the URL already says how to connect.
    """
    url = make_url(raw.replace("postgres://", "postgresql://", 1) if raw.startswith("postgres://") else raw)
    if url.get_backend_name() == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
        if (url.host or "") not in LOCAL_HOSTS and "sslmode" not in url.query:
            url = url.update_query_dict({"sslmode": "require"})
    return url


def sqlite_path(url: URL) -> Path | None:
    """The database file of a SQLite URL, or None for memory or other engines."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database).resolve()


def make_engine(raw_url: str) -> Engine:
    """A pooled engine for ``raw_url``; SQLite gets its folder, WAL and a busy timeout."""
    url = normalise_url(raw_url)
    path = sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    # hide_parameters: a failed statement's error, logged at ERROR, must not carry message text.
    engine = create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10, hide_parameters=True)
    if url.get_backend_name() == "sqlite":
        _configure_sqlite(engine, path)
    return engine


def writer(engine: Engine) -> Engine:
    """The same engine, but SQLite transactions take the write lock when they begin.

    A deferred SQLite transaction that reads and then writes fails at once when
    another writer got in between; an immediate one waits for the busy timeout.
    """
    return engine.execution_options(sqlite_begin="IMMEDIATE")


def _configure_sqlite(engine: Engine, path: Path | None) -> None:
    """Set the pragmas on every new connection, let us choose how BEGIN locks, and never keep a
    connection SQLite opened read-only once the file can be written again."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, record):
        # pysqlite's own BEGIN handling would ignore our choice of lock mode.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        _use_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()
        # SQLite opens a file it may not write read-only, and the connection stays read-only for good.
        record.info["read_only"] = path is not None and not _writable(path)

    @event.listens_for(engine, "checkout")
    def _on_checkout(_dbapi_connection, record, _proxy):
        if record.info.get("read_only") and _writable(path):
            raise DisconnectionError("opened while the database file was read-only")  # the pool opens a new one

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        if connection.get_execution_options().get("sqlite_begin") == "IMMEDIATE":
            _begin_immediate(connection)
        else:
            connection.exec_driver_sql("BEGIN")


def _use_wal(cursor) -> None:
    """Put the file in WAL mode (it stays so). Workers starting at once on a new file race to switch
    it, and SQLite can tell the loser 'database is locked' without waiting: it tries again."""
    _until_unlocked(lambda: cursor.execute("PRAGMA journal_mode = WAL"), pause_s=(0.001, 0.01))


def _begin_immediate(connection) -> None:
    """Take SQLite's write lock, polling every fraction of a millisecond while another writer holds it.

    SQLite's own busy handler backs off to sleeps of 25-100 ms, which turns a
    moment of contention between workers into a latency spike. BEGIN goes through
    SQLAlchemy, so any other failure (a read-only or vanished file) is its
    OperationalError, which the app answers 503, not a bare sqlite3 error (500).
    """
    dbapi_connection = connection.connection.dbapi_connection
    dbapi_connection.execute("PRAGMA busy_timeout = 0")
    try:
        _until_unlocked(lambda: connection.exec_driver_sql("BEGIN IMMEDIATE"), pause_s=(0.0001, 0.001))
    finally:
        if not connection.invalidated:  # SQLAlchemy closes a connection it judged lost
            dbapi_connection.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")


def _until_unlocked(statement: Callable[[], object], pause_s: tuple[float, float]) -> None:
    """Run ``statement``; while SQLite answers that the database is locked, pause a random moment within
    ``pause_s`` and run it again, for up to the busy timeout."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            statement()
            return
        except (sqlite3.OperationalError, OperationalError) as e:
            if "locked" not in str(getattr(e, "orig", e)) or time.monotonic() > deadline:
                raise
            time.sleep(random.uniform(*pause_s))


def _writable(path: Path) -> bool:
    """Whether this process may write the database file and the WAL files beside it."""
    files = (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"))
    return all(os.access(f, os.W_OK) for f in files if f.exists())


def describe(engine: Engine) -> str:
    """The engine's URL with the password hidden, for logs."""
    return engine.url.render_as_string(hide_password=True)


def is_persistent(engine: Engine, on_railway: bool, on_volume) -> bool:
    """Whether data written through ``engine`` survives a restart of this container."""
    if engine.url.get_backend_name() != "sqlite":
        return True
    path = sqlite_path(engine.url)
    if path is None or any(path.is_relative_to(d) for d in EPHEMERAL_DIRS):
        return False
    return on_volume(path) if on_railway else True


def log_startup(engine: Engine, persistent: bool, on_railway: bool) -> None:
    """One line naming the engine; a warning when its data would not survive."""
    log.info("Database engine: %s (%s)", engine.url.get_backend_name(), describe(engine))
    if not persistent:
        where = "outside the Railway volume" if on_railway else "on an ephemeral path"
        log.warning(
            "Database %s is %s: conversations will be lost on restart. "
            "Set DATABASE_URL to Postgres or put the SQLite file on a persistent volume.",
            describe(engine), where,
        )
