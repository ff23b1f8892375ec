"""When the database goes away: 503 with Retry-After and what the client needs to go on, never a 500.

The loss is real: the SQLite file is moved away with the pool emptied, so the next statement finds a
new, empty database. (Postgres is left out here; the same SQLAlchemy errors reach the same handler.)
"""

import os
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from storage.migrate import migrated_engine
from tests.conftest import chat_while_groq_answers, sse_events
from tests.fakes.groq_server import Behaviour
from tests.servers import GUNICORN, gunicorn
from tests.test_gunicorn import count, server_env

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@contextmanager
def database_gone(app, database_url):
    """The database file is away inside the block and back after it."""
    engine = app.extensions["therapistai"].database.engine
    database = Path(database_url.removeprefix("sqlite:///"))
    engine.dispose()
    database.rename(database.with_suffix(".away"))
    try:
        yield
    finally:
        engine.dispose()
        database.with_suffix(".away").replace(database)


@pytest.mark.parametrize("stream", [False, True])
def test_losing_the_database_while_groq_answers_gives_503_with_the_session_id(
        app, client, fake_groq, database_url, stream):
    fake_groq.then(Behaviour(text="Take a slow breath with me.", delay=1.0))
    with chat_while_groq_answers(app, fake_groq, {"message": "hello", "stream": stream}) as pending:
        with database_gone(app, database_url):  # the user's message is stored; Groq is answering
            answer = pending.result(timeout=30)

    if stream:
        error = sse_events(answer.get_data())[-1]["error"]
    else:
        assert answer.status_code == 503 and answer.headers["Retry-After"] == "5"
        error = answer.get_json()["error"]
    assert error["code"] == "database_unavailable" and "was saved" in error["message"]
    history = client.get(f"/api/sessions/{error['session_id']}/messages").get_json()["messages"]
    assert [(m["id"], m["content"]) for m in history] == [(error["message_id"], "hello")]  # nothing sent is lost


def test_a_crisis_message_still_gets_the_resources_when_the_database_is_down(app, client, database_url):
    with database_gone(app, database_url):
        response = client.post("/api/chat", json={"message": "I am going to kill myself tonight"})

    error = response.get_json()["error"]
    assert response.status_code == 503 and error["code"] == "database_unavailable"
    assert "could not be saved" in error["message"] and "988" in error["message"]
    assert "session_id" not in error


def test_health_and_history_answer_503_not_500_while_the_database_is_down(app, client, database_url):
    session_id = client.post("/api/chat", json={"message": "hello"}).get_json()["session_id"]
    with database_gone(app, database_url):
        history = client.get(f"/api/sessions/{session_id}/messages")
        alive = client.get("/health")

    assert history.status_code == 503 and history.get_json()["error"]["code"] == "database_unavailable"
    assert alive.status_code == 200


@pytest.mark.empty_database  # the migration below makes the -wal and -shm files, as a first worker does
def test_a_worker_writes_again_once_a_read_only_database_file_is_writable(database_url, fake_groq, tmp_path):
    """SQLite opens a file it may not write read-only, and such a connection stays read-only: the worker
    must replace it, not answer 503 until it restarts. Real gunicorn, one worker, started while the file is
    read-only; as root, without the capability that lets root write any file, so the file's mode counts.
    Another process keeps the database open throughout, as a second worker does, so its -wal and -shm
    files stay as they were made: writable."""
    database = Path(database_url.removeprefix("sqlite:///"))
    engine = migrated_engine(database_url)
    command = [str(GUNICORN), "-c", "gunicorn.conf.py", "api:app"]
    if os.geteuid() == 0:
        command = ["setpriv", "--bounding-set=-dac_override", *command]
    env = {**server_env(database_url, fake_groq), "WEB_CONCURRENCY": "1"}
    with engine.connect() as other_process:
        other_process.exec_driver_sql("SELECT count(*) FROM messages")
        database.chmod(0o444)
        with gunicorn(env, command=command) as base_url:
            refused = requests.post(f"{base_url}/api/chat", json={"message": "hello"}, timeout=30)
            read_only = requests.get(f"{base_url}/health/db", timeout=30)
            reading = requests.get(f"{base_url}/health/ready", timeout=30)  # reads go on, on a new connection
            database.chmod(0o644)
            accepted = requests.post(f"{base_url}/api/chat", json={"message": "hello again"}, timeout=30)
            writable = requests.get(f"{base_url}/health/db", timeout=30)
    engine.dispose()

    assert refused.status_code == 503 and refused.json()["error"]["code"] == "database_unavailable"
    assert read_only.status_code == 503
    assert {k: read_only.json()[k] for k in ("reachable", "writable")} == {"reachable": True, "writable": False}
    assert reading.status_code == 200
    assert accepted.status_code == 200, accepted.text  # the first request after the file is writable again
    assert writable.status_code == 200 and writable.json()["writable"] is True
    assert count(database_url, "SELECT count(*) FROM messages WHERE role = 'user'") == 1
