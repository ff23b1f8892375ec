"""Embedding remembered messages in the background: woken after a remembered turn is stored, never on
the request's path. Every web worker runs one; two that embed the same message store it once."""

from __future__ import annotations

import atexit
import logging
from typing import Callable

from embeddings.model import Embedder
from embeddings.vectors import VectorStore
from storage.poller import Poller

log = logging.getLogger(__name__)

BATCH = 32
POLL_SECONDS = 60.0  # a look without a notify: another replica or a restart may have left a backlog


class Indexer:
    """Drains the backlog of memorable messages into the vector store."""

    def __init__(self, store: VectorStore, embedder: Embedder):
        self.store, self.embedder = store, embedder
        self._loop = Poller(self._look, "memory-indexer", POLL_SECONDS, log,
                            "Embedding remembered messages failed; retrying later", join_timeout=10)

    def start(self) -> None:
        """Run in a daemon thread of this process."""
        self._loop.start()
        atexit.register(self.stop)

    def notify(self) -> None:
        """A remembered turn was stored: embed it soon. Costs an event flag."""
        self._loop.notify()

    def drain(self, progress: Callable[[int], None] = lambda n: None) -> int:
        """Embed the whole backlog, a batch at a time; how many messages were stored."""
        stored = 0
        while not self._loop.stopping:
            pending = self.store.backlog(BATCH)
            if not pending:
                break
            added = self.store.add(pending, self.embedder.embed([p.content for p in pending]))
            progress(len(pending))
            stored += added
            if added == 0:  # the batch was erased or forgotten meanwhile; the next look will not see it
                break
        return stored

    def _look(self) -> bool:
        """Drain the backlog, then wait for the next notify or poll."""
        self.drain()
        return False

    def stop(self) -> None:
        """End the loop after the batch in hand."""
        self._loop.stop()
