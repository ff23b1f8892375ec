"""When the database goes away: 503 with Retry-After and what the client needs to go on, never a 500.

The loss is real: the SQLite file is moved away with the pool emptied, so the next statement finds a
new, empty database. (Postgres is left out here; the same SQLAlchemy errors reach the same handler.)
"""

from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import chat_while_groq_answers, sse_events
from tests.fakes.groq_server import Behaviour

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@contextmanager
def database_gone(app, database_url):
    """The database file is away inside the block and back after it."""
    engine = app.extensions["therapistai"].repo.engine
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
