"""Embedding remembered messages in the background: woken after a remembered turn is stored, never on
the request's path. Every web worker runs one; two that embed the same message store it once."""

from __future__ import annotations

import atexit
import logging
import threading
from typing import Callable

from embeddings.model import Embedder
from embeddings.vectors import VectorStore

log = logging.getLogger(__name__)

BATCH = 32
POLL_SECONDS = 60.0  # a look without a notify: another replica or a restart may have left a backlog


class Indexer:
    """Drains the backlog of memorable messages into the vector store."""

    def __init__(self, store: VectorStore, embedder: Embedder):
        self.store, self.embedder = store, embedder
        self._wake, self._stop = threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Run in a daemon thread of this process."""
        self._thread = threading.Thread(target=self._run, name="memory-indexer", daemon=True)
        self._thread.start()
        atexit.register(self.stop)

    def notify(self) -> None:
        """A remembered turn was stored: embed it soon. Costs an event flag."""
        self._wake.set()

    def drain(self, progress: Callable[[int], None] = lambda n: None) -> int:
        """Embed the whole backlog, a batch at a time; how many messages were stored."""
        stored = 0
        while not self._stop.is_set():
            pending = self.store.backlog(BATCH)
            if not pending:
                break
            added = self.store.add(pending, self.embedder.embed([p.content for p in pending]))
            progress(len(pending))
            stored += added
            if added == 0:  # the batch was erased or forgotten meanwhile; the next look will not see it
                break
        return stored

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.drain()
            except Exception:  # the database may be away for a moment; the loop must survive it
                log.exception("Embedding remembered messages failed; retrying later")
            self._wake.wait(POLL_SECONDS)
            self._wake.clear()

    def stop(self) -> None:
        """End the loop after the batch in hand."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
