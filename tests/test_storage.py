"""The database layer: URLs, SQLite pragmas, migrations under concurrency, persistence checks."""

import json
import logging
import subprocess
import sys
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect

from storage import migrate
from storage.engine import is_persistent, log_startup, make_engine, normalise_url
from web.json_provider import JSONProvider

ROOT = Path(__file__).resolve().parent.parent
HEAD = ScriptDirectory(str(migrate.MIGRATIONS_DIR)).get_current_head()


@pytest.mark.parametrize("raw, expected", [
    ("postgres://u:p@db.example.com:5432/app", "postgresql+psycopg://u:p@db.example.com:5432/app?sslmode=require"),
    ("postgresql://u:p@db.example.com/app", "postgresql+psycopg://u:p@db.example.com/app?sslmode=require"),
    ("postgresql://u@localhost/app", "postgresql+psycopg://u@localhost/app"),
    ("postgres://u@127.0.0.1:5432/app", "postgresql+psycopg://u@127.0.0.1:5432/app"),
    ("postgresql://u@db.example.com/app?sslmode=disable", "postgresql+psycopg://u@db.example.com/app?sslmode=disable"),
    ("postgresql+psycopg://u@localhost/app", "postgresql+psycopg://u@localhost/app"),
    ("sqlite:///data/x.db", "sqlite:///data/x.db"),
])
def test_urls_are_normalised_for_psycopg_3_and_tls(raw, expected):
    assert normalise_url(raw).render_as_string(hide_password=False) == expected


def test_sqlite_gets_its_folder_wal_busy_timeout_and_foreign_keys(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/nested/dir/app.db")
    with engine.connect() as connection:
        pragmas = {name: connection.exec_driver_sql(f"PRAGMA {name}").scalar()
                   for name in ("journal_mode", "busy_timeout", "foreign_keys")}
    engine.dispose()

    assert (tmp_path / "nested" / "dir" / "app.db").exists()
    assert pragmas == {"journal_mode": "wal", "busy_timeout": 10000, "foreign_keys": 1}


def test_engine_pool_pings_and_is_sized(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path}/app.db")

    assert engine.pool._pre_ping is True and engine.pool.size() == 5 and engine.pool._max_overflow == 10


@pytest.mark.empty_database
def test_migrations_are_idempotent(database_url):
    engine = make_engine(database_url)
    migrate.upgrade(engine)
    migrate.upgrade(engine)

    assert {"chat_sessions", "messages", "alembic_version"} <= set(inspect(engine).get_table_names())
    engine.dispose()


@pytest.mark.empty_database
def test_workers_starting_at_once_migrate_safely(database_url):
    script = "import sys; from storage import migrate; from storage.engine import make_engine; " \
             "migrate.upgrade(make_engine(sys.argv[1]))"
    workers = [subprocess.Popen([sys.executable, "-c", script, database_url], cwd=ROOT, stderr=subprocess.PIPE)
               for _ in range(4)]
    results = [(w.wait(timeout=60), w.stderr.read().decode()) for w in workers]

    assert [code for code, _ in results] == [0, 0, 0, 0], results
    engine = make_engine(database_url)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all() == [HEAD]
    engine.dispose()


@pytest.mark.parametrize("url, on_railway, volume, expected", [
    ("sqlite:////srv/app/data.db", False, None, True),
    ("sqlite:////tmp/data.db", False, None, False),
    ("sqlite:////srv/app/data.db", True, "/data", False),
    ("sqlite:////data/db/data.db", True, "/data", True),
    ("postgresql://u@db.example.com/app", True, None, True),
])
def test_persistence_is_judged_by_path_and_volume(url, on_railway, volume, expected):
    engine = create_engine(normalise_url(url))
    on_volume = lambda path: volume is not None and Path(path).is_relative_to(volume)  # noqa: E731

    assert is_persistent(engine, on_railway, on_volume) is expected


def test_ephemeral_database_is_warned_about(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    engine = make_engine(f"sqlite:///{tmp_path}/app.db")

    log_startup(engine, persistent=False, on_railway=False)

    assert "Database engine: sqlite" in caplog.text
    assert any(r.levelno == logging.WARNING and "ephemeral" in r.getMessage() for r in caplog.records)


def test_dates_and_decimals_serialise(app):
    provider = JSONProvider(app)
    moment = datetime(2026, 11, 20, 9, 30, tzinfo=timezone.utc)

    out = json.loads(provider.dumps({"at": moment, "avg": Decimal("12.5"), "n": Decimal("3")}))

    assert out == {"at": "2026-11-20T09:30:00+00:00", "avg": 12.5, "n": 3}
