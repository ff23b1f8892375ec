"""The service under real gunicorn with two workers, against the fake Groq."""

import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from storage.engine import make_engine
from tests.conftest import NO_LIMIT
from tests.fakes.groq_server import Behaviour
from tests.servers import gunicorn


def server_env(database_url, fake_groq):
    """The environment a deployment would set, pointing at the test doubles."""
    return {"DATABASE_URL": database_url, "GROQ_API_KEY": "test-key", "GROQ_BASE_URL": fake_groq.base_url,
            "GROQ_MAX_RETRIES": "0", "WEB_CONCURRENCY": "2", "LOG_LEVEL": "INFO", "CHAT_RATE_LIMIT": NO_LIMIT}


def count(database_url, sql):
    """One number from the database the server wrote to."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return connection.execute(text(sql)).scalar()
    finally:
        engine.dispose()


def test_200_concurrent_chats_store_exactly_400_messages(database_url, fake_groq, tmp_path):
    log_path = tmp_path / "gunicorn.log"
    with gunicorn(server_env(database_url, fake_groq), log_path=log_path) as base_url:
        def chat(i):
            response = requests.post(f"{base_url}/api/chat", json={"message": f"message number {i}"}, timeout=30)
            return response.status_code, response.json()

        with ThreadPoolExecutor(max_workers=20) as pool:
            results = list(pool.map(chat, range(200)))

    assert [status for status, _ in results] == [200] * 200
    assert len({body["session_id"] for _, body in results}) == 200
    assert count(database_url, "SELECT count(*) FROM messages") == 400
    assert count(database_url, "SELECT count(*) FROM messages WHERE role = 'assistant' AND status = 'ok'") == 200
    assert "message number" not in log_path.read_text()  # message text never reaches the log


def test_groq_failing_with_500_stores_the_message_and_answers_json_502(database_url, fake_groq):
    fake_groq.default = Behaviour(status=500)
    with gunicorn(server_env(database_url, fake_groq)) as base_url:
        response = requests.post(f"{base_url}/api/chat", json={"message": "is anyone there"}, timeout=30)

    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_error" and response.json()["error"]["session_id"]
    assert count(database_url, "SELECT count(*) FROM messages WHERE role = 'user' AND content = 'is anyone there'") == 1


def test_client_disconnecting_mid_stream_leaves_a_truncated_reply(database_url, fake_groq):
    # sentences, because a stream shows text once it is screened, a sentence end at a time
    text = " ".join(f"Thank you for sharing this with me, it sounds like a long day number {i}." for i in range(20))
    fake_groq.default = Behaviour(text=text, chunk_delay=0.05)
    with gunicorn(server_env(database_url, fake_groq)) as base_url:
        host, port = base_url.removeprefix("http://").split(":")
        body = json.dumps({"message": "stream please", "stream": True})
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall((f"POST /api/chat HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                          f"Content-Length: {len(body)}\r\n\r\n{body}").encode())
            received = b""
            while b"day number 0." not in received:
                received += sock.recv(4096)
        # the server notices on its next write and stores what it had sent
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not count(database_url, "SELECT count(*) FROM messages WHERE role = 'assistant'"):
            time.sleep(0.2)

    status = count(database_url, "SELECT status FROM messages WHERE role = 'assistant'")
    words = count(database_url, "SELECT content FROM messages WHERE role = 'assistant'").split()
    assert status == "truncated" and 0 < len(words) < 300 and words[:3] == ["Thank", "you", "for"]


def test_the_log_never_holds_a_session_id_and_warns_that_limits_count_per_worker(database_url, fake_groq, tmp_path):
    log_path = tmp_path / "gunicorn.log"
    # A metrics folder named, not yet made, with metrics off (no METRICS_TOKEN): the workers still serve.
    env = {**server_env(database_url, fake_groq), "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "not-yet" / "metrics")}
    with gunicorn(env, log_path=log_path) as base_url:
        session_id = requests.post(f"{base_url}/api/chat", json={"message": "hello"}, timeout=30).json()["session_id"]
        for method, path in (("get", "/messages"), ("patch", ""), ("delete", "")):
            getattr(requests, method)(f"{base_url}/api/sessions/{session_id}{path}",
                                      json={"training_consent": False}, timeout=30)

    log = log_path.read_text()
    assert session_id not in log
    assert '"GET /api/sessions/-/messages HTTP/1.1" 200' in log and '"DELETE /api/sessions/- HTTP/1.1" 204' in log
    assert "Rate limits count per worker with RATELIMIT_STORAGE_URI=memory://: 2 workers" in log


def test_a_failed_statement_does_not_carry_its_parameters_into_the_error(database_url):
    engine = make_engine(database_url)
    try:
        with pytest.raises(SQLAlchemyError) as error, engine.connect() as connection:
            connection.execute(text("SELECT * FROM no_such_table WHERE content = :content"),
                               {"content": "what a patient said"})
    finally:
        engine.dispose()

    assert "what a patient said" not in str(error.value) and "no_such_table" in str(error.value)
