"""A background thread that looks at the database for work: when notified, and every poll interval anyway.

The training trigger (jobs) and the memory indexer (embeddings) both run one; it lives here because
storage is the one room both may import.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable


class Poller:
    """Runs ``look`` on a daemon thread (or in the foreground) until stopped.

    ``look`` returns True to look again at once (work was done and more may have come meanwhile),
    False to wait for a notify or ``poll_seconds``. An exception is logged and the loop goes on:
    the database may be away for a moment.
    """

    def __init__(self, look: Callable[[], bool], name: str, poll_seconds: float, log: logging.Logger,
                 failure: str, min_interval: float = 0.0, join_timeout: float | None = None):
        """``min_interval``: a pause after every look, so that notifies in between fold into the next one;
        ``join_timeout``: how long stop() waits for the thread, None for not at all."""
        self.look, self.name, self.poll_seconds = look, name, poll_seconds
        self.log, self.failure = log, failure
        self.min_interval, self.join_timeout = min_interval, join_timeout
        self._wake, self._stop = threading.Event(), threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def stopping(self) -> bool:
        """True once stop() was called."""
        return self._stop.is_set()

    def start(self) -> None:
        """Run the loop in a daemon thread of this process."""
        self._thread = threading.Thread(target=self.run_forever, name=self.name, daemon=True)
        self._thread.start()

    def notify(self) -> None:
        """Look soon. Costs an event flag; does nothing unless the loop runs in its thread."""
        if self._thread is not None:
            self._wake.set()

    def run_forever(self) -> None:
        """Look, then pause and wait for the next notify or poll; until stopped."""
        while not self._stop.is_set():
            again = False
            try:
                again = self.look()
            except Exception:  # the database may be away for a moment; the loop must survive it
                self.log.exception(self.failure)
            self._stop.wait(self.min_interval)
            if not again:
                self._wake.wait(self.poll_seconds)
            self._wake.clear()

    def stop(self) -> None:
        """End the loop after the look in hand; wait for it up to ``join_timeout``."""
        self._stop.set()
        self._wake.set()
        if self.join_timeout is not None and self._thread is not None \
                and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.join_timeout)
