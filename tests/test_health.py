"""GET /health and the database checks."""

from storage.engine import make_engine


def test_health_db_reports_engine_reachability_and_persistence(app, client, database_url):
    body = client.get("/health/db").get_json()

    expected_engine = "sqlite" if database_url.startswith("sqlite") else "postgresql"
    assert body["engine"] == expected_engine and body["reachable"] is True
    # pytest's temporary folder is under /tmp: a SQLite file there would not survive a restart
    assert body["persistent"] is (expected_engine == "postgresql")


def test_health_db_tables_lists_the_schema(client):
    body = client.get("/health/db/tables").get_json()

    assert {"chat_sessions", "messages", "alembic_version"} <= set(body["tables"])


def test_when_the_database_goes_away_health_db_answers_503_and_health_stays_ok(app, client):
    # the database server disappears: nothing listens on port 1
    app.extensions["therapistai"].repo.engine = make_engine("postgresql://nobody@127.0.0.1:1/none?connect_timeout=1")

    response = client.get("/health/db")

    assert response.status_code == 503 and response.get_json()["reachable"] is False
    assert client.get("/health").get_json() == {"status": "ok"}
