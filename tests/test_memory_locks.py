"""Forgetting a memory while the indexer stores one of its messages, on Postgres (SQLite serialises every
writer): the two take their locks in the order that lets one wait for the other, never a deadlock."""

import os
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import text

from embeddings.vectors import PGVECTOR, VectorStore
from tests.browser import wait_until
from tests.conftest import stored

pytestmark = pytest.mark.parametrize(
    "database_url", (["postgres"] if os.environ.get("TEST_DATABASE_URL") else []) + ["pgvector"], indirect=True)


def test_forgetting_while_an_embedding_is_stored_waits_for_it_then_deletes_it(make_app, tmp_path):
    app = make_app(embeddings_dir=str(tmp_path / "no-model"))  # no indexer of its own: this test is the indexer
    memory_id = app.test_client().post("/api/chat", json={"message": "hello there", "remember": True}).json["memory_id"]
    store = VectorStore(app.extensions["therapistai"].database.engine)
    (pending, _) = store.backlog(10)
    vector_type = "vector" if store.backend == PGVECTOR else "bytea"

    with store.engine.connect() as indexer, ThreadPoolExecutor(1) as pool:
        # the indexer's transaction, as VectorStore.add runs it: the conversation's share lock first ...
        indexer.execute(text("SELECT id FROM chat_sessions WHERE id = :s FOR SHARE"), {"s": pending.session_id})
        forgetting = pool.submit(store.forget, memory_id)
        wait_until(lambda: _waiting_locks(store) > 0, timeout=10, what="forget waiting for the indexer")
        # ... then the insert, whose foreign key takes a key-share lock on the memory
        indexer.execute(text(f"INSERT INTO message_embeddings (message_id, memory_id, session_id, exchange_id, "
                             f"embedding, created_at) VALUES (:m, :memory, :s, :m, CAST(:v AS {vector_type}), now())"),
                        {"m": pending.message_id, "memory": memory_id, "s": pending.session_id,
                         "v": "[" + ",".join(["0.05"] * 384) + "]"})
        indexer.commit()
        forgetting.result(timeout=30)

    assert stored(app, "message_embeddings") == []
    assert stored(app, "memories")[0]["forgotten_at"] is not None


def _waiting_locks(store: VectorStore) -> int:
    with store.engine.connect() as connection:
        return connection.execute(text("SELECT count(*) FROM pg_locks WHERE NOT granted")).scalar()
