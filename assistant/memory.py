"""Memory across sessions: earlier exchanges of the same person, recalled into the system prompt.

Only a turn that carries its memory id recalls, and only from that memory's other
conversations: the current one is in the history already. Recalled text is redacted as
training data is. The message's embedding is usually free here: screening has just made it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import Engine

from assistant.redact import redact
from config import Settings
from embeddings.indexer import Indexer
from embeddings.model import Embedder, shared_embedder
from embeddings.vectors import PGVECTOR, VectorStore

log = logging.getLogger(__name__)

TOP_K = 5  # most similar earlier messages looked at
# all-MiniLM-L6-v2 cosine from which an earlier message counts as relevant. Measured: a paraphrase 0.90-0.99,
# the same topic in other words about 0.5 ("my sister moved to Lisbon" / "my sister being so far away"),
# other worries 0.02-0.29 ("sleep better" / "feel anxious").
MIN_SIMILARITY = 0.35
CHARS_PER_TOKEN = 4  # an estimate for English: the budget is a limit on prompt size, not an exact count
HEADER = ("Earlier conversations with this person, from other sessions, that may be relevant. "
          "Use them only if they help; do not mention them unless the person does:")


@dataclass
class Memory:
    """This process's memory: the vector store, the background indexer and recall."""

    store: VectorStore
    embedder: Embedder | None
    max_tokens: int
    error: str | None = None  # why memory cannot embed (the model did not load)
    indexer: Indexer | None = None

    @classmethod
    def from_settings(cls, settings: Settings, engine: Engine) -> "Memory":
        """Memory with its indexer running; without an embedding model, ids are kept and nothing is embedded."""
        store = VectorStore(engine)
        embedder, error = shared_embedder(settings.embeddings_dir) if settings.memory_enabled else (None, None)
        memory = cls(store, embedder, settings.memory_max_tokens, error)
        if not settings.memory_enabled:
            log.info("MEMORY_ENABLED=0: memory across sessions is off")
            return memory
        log.info("Memory across sessions: %s vectors (%s)", store.backend,
                 "vector(384), HNSW index" if store.backend == PGVECTOR else "float32 bytes, exact search")
        if embedder is None:
            log.error("MEMORY ACROSS SESSIONS CANNOT EMBED: the sentence-embedding model did not load (%s). "
                      "Remembered messages wait in the backlog and nothing is recalled.", error)
        else:
            memory.indexer = Indexer(store, embedder)
            memory.indexer.start()
        return memory

    def notify(self) -> None:
        """A remembered turn was stored."""
        if self.indexer is not None:
            self.indexer.notify()

    def recall(self, memory_id: str, session_id: str, message: str) -> str | None:
        """The system prompt's memory block for this message, or None when nothing relevant is remembered."""
        if self.embedder is None or self.max_tokens == 0:
            return None
        query = self.embedder.embed([message])[0]
        hits = [h for h in self.store.search(memory_id, session_id, query, TOP_K) if h.similarity >= MIN_SIMILARITY]
        order = list(dict.fromkeys(h.exchange_id for h in hits))  # best exchange first
        if not order:
            return None
        exchanges = self.store.exchanges(order)
        lines, budget = [HEADER], self.max_tokens * CHARS_PER_TOKEN - len(HEADER)
        for exchange_id in order:
            text = "\n".join(f"- {'They said' if author == 'user' else 'You replied'}: {redact(content)}"
                             for author, content in exchanges.get(exchange_id, []))
            if not text or len(text) > budget:
                continue
            lines.append(text)
            budget -= len(text) + 1
        return "\n".join(lines) if len(lines) > 1 else None

    def close(self) -> None:
        """Stop the indexer."""
        if self.indexer is not None:
            self.indexer.stop()
