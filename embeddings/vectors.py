"""Where remembered messages' embeddings live and how they are searched.

Postgres with pgvector: a vector(384) column with an HNSW index, searched by cosine distance
with iterative index scans, so a filter on one person's memory still fills the top k. Anywhere
else: float32 bytes, and an exact search in numpy over that person's rows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Engine, bindparam, select, type_coerce
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from embeddings.model import DIMENSIONS
from embeddings.search import nearest
from storage.memories import Memories, Pending
from storage.tables import MessageEmbedding

log = logging.getLogger(__name__)

PGVECTOR, PORTABLE = "pgvector", "portable"


@dataclass(frozen=True)
class Hit:
    """A remembered message similar to the query."""

    message_id: int
    exchange_id: int
    similarity: float


class VectorStore(Memories):
    """The embeddings of remembered messages, on whichever backend migration 0006 created."""

    def __init__(self, engine: Engine):
        super().__init__(engine)
        self.backend = detect_backend(engine)
        if self.backend == PGVECTOR:
            from pgvector.sqlalchemy import VECTOR

            self._column = type_coerce(MessageEmbedding.embedding, VECTOR(DIMENSIONS))
            self._vector_type = VECTOR(DIMENSIONS)

    def add(self, pending: list[Pending], vectors: np.ndarray) -> int:
        """Store the vectors of messages that are still memorable; returns how many were stored."""
        values = {p.message_id: v for p, v in zip(pending, vectors)}
        with self._write() as db:
            rows = [{"message_id": p.message_id, "memory_id": p.memory_id, "session_id": p.session_id,
                     "exchange_id": p.exchange_id, self._vector_key: self._to_db(values[p.message_id])}
                    for p in self.still_memorable(db, pending)]
            if rows:  # another worker may have embedded some already: theirs stand
                db.execute(self._insert().on_conflict_do_nothing(index_elements=["message_id"]), rows)
        return len(rows)

    def search(self, memory_id: str, other_than_session: str, query: np.ndarray, k: int) -> list[Hit]:
        """The ``k`` messages of this memory, outside one conversation, most similar to ``query``, best first."""
        where = (MessageEmbedding.memory_id == memory_id, MessageEmbedding.session_id != other_than_session)
        with self._read() as db:
            if self.backend == PGVECTOR:
                # hnsw.ef_search stays pgvector's 40: recall@5 0.99 at 100k on bench/memory_search.py (100: 1.0,
                # but p50 8.7 ms against 6.6 ms)
                db.connection().exec_driver_sql("SET LOCAL hnsw.iterative_scan = relaxed_order")
                distance = self._column.cosine_distance(bindparam("query", query, type_=self._vector_type))
                rows = db.execute(select(MessageEmbedding.message_id, MessageEmbedding.exchange_id, distance)
                                  .where(*where).order_by(distance).limit(k)).all()
                hits = [Hit(m, e, 1.0 - d) for m, e, d in rows]
                return sorted(hits, key=lambda h: -h.similarity)  # relaxed order: nearly sorted
            rows = db.execute(select(MessageEmbedding.message_id, MessageEmbedding.exchange_id,
                                     MessageEmbedding.embedding).where(*where)).all()
        if not rows:
            return []
        corpus = np.frombuffer(b"".join(r.embedding for r in rows), dtype=np.float32).reshape(len(rows), DIMENSIONS)
        scores, indices = nearest(query[None, :], corpus, k)
        return [Hit(rows[i].message_id, rows[i].exchange_id, float(s)) for s, i in zip(scores[0], indices[0])]

    @property
    def _vector_key(self) -> str:
        """The parameter the embedding is bound to: the column itself, or pgvector's typed parameter."""
        return "vector" if self.backend == PGVECTOR else "embedding"

    def _to_db(self, vector: np.ndarray):
        """What the column takes: the vector for pgvector's type, float32 bytes otherwise."""
        return vector if self.backend == PGVECTOR else np.asarray(vector, dtype=np.float32).tobytes()

    def _insert(self):
        """INSERT with the dialect's ON CONFLICT, the embedding bound as the column's real type."""
        table = MessageEmbedding.__table__
        if self.backend == PGVECTOR:
            return pg_insert(table).values(embedding=bindparam("vector", type_=self._vector_type))
        return (pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert)(table)


def detect_backend(engine: Engine) -> str:
    """pgvector when the embedding column is a vector, portable otherwise."""
    if engine.dialect.name != "postgresql":
        return PORTABLE
    with engine.connect() as connection:
        kind = connection.exec_driver_sql(
            "SELECT udt_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = 'message_embeddings' AND column_name = 'embedding'"
        ).scalar()
    return PGVECTOR if kind == "vector" else PORTABLE
