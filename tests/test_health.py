"""GET /health (liveness), /health/ready (readiness) and the database checks."""

import time
from dataclasses import replace
from urllib.parse import urlparse

from storage.engine import make_engine
from tests.browser import wait_until
from tests.conftest import save_version
from tests.fakes.gated_proxy import GatedProxy

UNREACHABLE = "postgresql://nobody@127.0.0.1:1/none?connect_timeout=1"


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
    app.extensions["therapistai"].database.engine = make_engine(UNREACHABLE)

    response = client.get("/health/db")

    assert response.status_code == 503 and response.get_json()["reachable"] is False
    assert client.get("/health").get_json() == {"status": "ok"}


def test_ready_at_once_when_no_version_is_active_with_or_without_local_ai(make_app, settings):
    for use_local_ai in (False, True):
        client = make_app(use_local_ai=use_local_ai).test_client()

        response = client.get("/health/ready")

        assert (response.status_code, response.get_json()) == (200, {"ready": True})


def wait_for_ready(client):
    return wait_until(lambda: (response := client.get("/health/ready")).status_code == 200 and response,
                      timeout=60, what="readiness")


def test_not_ready_until_this_worker_has_loaded_the_active_version_from_the_store(
        make_app, settings, model_bucket, tiny_model_dir, tmp_path, monkeypatch):
    url, aws = model_bucket
    store = replace(settings, model_store_url=url, aws_region=aws["AWS_REGION"])
    version = save_version(replace(store, model_dir=str(tmp_path / "trainer")), tiny_model_dir)
    endpoint = urlparse(aws["AWS_ENDPOINT_URL"])
    slow_store = GatedProxy(endpoint.hostname, endpoint.port)  # the bucket answers only when the gate opens
    monkeypatch.setenv("AWS_ENDPOINT_URL", slow_store.url)
    try:
        app = make_app(model_store_url=url, aws_region=aws["AWS_REGION"], model_dir=str(tmp_path / "web"),
                       use_local_ai=True, local=replace(settings.local, poll_seconds=0.2))
        client = app.test_client()
        time.sleep(0.5)  # the worker is waiting for the store now
        waiting = client.get("/health/ready")

        slow_store.open()
        ready = wait_for_ready(client)
    finally:
        slow_store.close()

    assert (waiting.status_code, waiting.get_json()) == (503, {"ready": False, "waiting_for": ["local_model"]})
    assert ready.get_json() == {"ready": True} and slow_store.held >= 1
    assert app.extensions["therapistai"].assistant.local.status()["loaded_version"] == version


def test_ready_once_a_version_that_cannot_load_has_been_given_up_on(make_app, settings, tiny_model_dir, tmp_path):
    version = save_version(settings, tiny_model_dir)
    next((tmp_path / "models" / version).glob("*.safetensors")).write_bytes(b"damaged")
    app = make_app(use_local_ai=True)

    wait_for_ready(app.test_client())

    assert version in app.extensions["therapistai"].assistant.local.status()["load_error"]


def test_not_ready_while_the_database_is_unreachable(app, client):
    app.extensions["therapistai"].database.engine = make_engine(UNREACHABLE)

    response = client.get("/health/ready")

    assert (response.status_code, response.get_json()) == (503, {"ready": False, "waiting_for": ["database"]})
