"""Continuous batching: one long-lived torch thread per owner decodes all of its replies together.

Torch's CPU thread pool is per calling thread: generating from several request threads in turn slowed every
reply by more than half on two cores (45 -> 19 tokens/s, measured on SmolLM2-135M's shape), so all torch work
(loading, and every reply) runs on this one thread. A reply that arrives while others decode joins the batch
at the next step; one that ends, or whose client left, leaves it at once. LOCAL_MAX_BATCH rows decode at once,
LOCAL_MAX_QUEUE more may wait; past that a reply is refused at once (ProviderBusy), and one that waited past
its deadline without a place is withdrawn, so the router asks Groq instead. Background replies (shadow traffic)
join only when there is room and no user's reply waits, and give their place up when one does.

Imports no torch: a model's ``batch()`` (assistant.local_batch) does the tensor work.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections import Counter, deque
from concurrent.futures import Future
from dataclasses import dataclass, field

from assistant.completion import ProviderBusy
from telemetry.metrics import LOCAL_BATCH_SIZE, LOCAL_QUEUE_DEPTH, LOCAL_TOKENS

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Row:
    """One reply asked of a model; the torch thread puts ("prompt", n), ("token", id)..., then ("end", None)
    or ("error", exception) into ``items``."""

    loaded: object  # the LoadedModel that answers
    messages: list[dict]
    deadline: float  # time.monotonic() by which the reply must be done
    background: bool = False  # shadow traffic: yields to users' replies
    items: queue.Queue = field(default_factory=queue.Queue)
    cancelled: threading.Event = field(default_factory=threading.Event)
    seen: object = None  # prompt and reply ids so far (a tensor), once the prompt has run
    prompt_tokens: int = 0

    def put(self, kind: str, value) -> None:
        """Hand one item to the reader."""
        if kind == "prompt":
            self.prompt_tokens = value
        elif kind == "token":
            LOCAL_TOKENS.inc()
        self.items.put((kind, value))


class Decoder:
    """The torch thread of one owner: calls (loading) between steps, and the batched replies."""

    def __init__(self, name: str, max_batch: int, max_queue: int, nice: int = 0):
        """``nice``: the thread's niceness (Linux sets it per thread), for work that must yield to requests."""
        self.max_batch, self.max_queue, self.nice = max_batch, max_queue, nice
        self._changed = threading.Condition()
        self._calls: deque[tuple[Future, object, tuple]] = deque()
        self._waiting: deque[Row] = deque()
        self._batches: dict[int, object] = {}  # id(LoadedModel) -> its Batch
        self._running = self._running_users = 0  # rows in the batches, all and users' only
        self._stopped = False
        self.steps_by_size: Counter[int] = Counter()  # decoding steps taken at each batch size
        self.left_early = 0  # rows that left the batch because their reader gave up (a client that left)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def call(self, fn, *args) -> Future:
        """Run ``fn(*args)`` on the torch thread, between two steps."""
        future: Future = Future()
        with self._changed:
            self._calls.append((future, fn, args))
            self._changed.notify()
        return future

    def submit(self, row: Row) -> Row:
        """Queue a reply for the batch; ProviderBusy when LOCAL_MAX_QUEUE users' replies already wait for a full
        batch, or, for a background reply, when it cannot start at once."""
        with self._changed:
            if self._full_for(row):
                raise ProviderBusy(f"The local model has {self._running} replies under way and "
                                   f"{len(self._waiting)} waiting; Groq answers instead.")
            self._waiting.append(row)
            LOCAL_QUEUE_DEPTH.inc()
            self._changed.notify()
        return row

    def _full_for(self, row: Row) -> bool:
        """Whether ``row`` must be refused (background rows do not count against a user's). Lock held."""
        if row.background:
            return bool(self._waiting) or self._running >= self.max_batch
        users = sum(not waiting.background for waiting in self._waiting)
        return users >= self.max_queue and self._running_users + users >= self.max_batch

    def withdraw(self, row: Row) -> bool:
        """Stop a reply (its reader gave up); True when it was still waiting for a place."""
        row.cancelled.set()
        with self._changed:
            try:
                self._waiting.remove(row)
            except ValueError:
                return False
            LOCAL_QUEUE_DEPTH.dec()
            return True

    def status(self) -> dict:
        """Queue depth and batch sizes, for /api/stats."""
        with self._changed:
            return {"running": self._running, "waiting": len(self._waiting), "max_batch": self.max_batch,
                    "max_queue": self.max_queue, "largest_batch": max(self.steps_by_size, default=0),
                    "steps_by_batch_size": {str(k): v for k, v in sorted(self.steps_by_size.items())},
                    "left_early": self.left_early}

    def close(self) -> None:
        """Let the thread end after the step under way."""
        with self._changed:
            self._stopped = True
            self._changed.notify()

    def _run(self) -> None:
        """Calls, then new rows, then one step of every batch, until closed."""
        if self.nice:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.nice)
        while True:
            with self._changed:
                while not (self._calls or self._waiting or self._running or self._stopped):
                    self._changed.wait()
                if self._stopped:
                    return
                calls, self._calls = self._calls, deque()
                joining = self._admit()
            for future, fn, args in calls:
                _run_call(future, fn, args)
            try:
                for row in joining:
                    self._batch(row.loaded).join(row)
                self._step()
            except Exception as e:  # a fault of the batching itself: its replies fail over, the thread goes on
                log.exception("Local batch decoding failed")
                self._fail_all(e, joining)

    def _fail_all(self, error: Exception, joining: list[Row]) -> None:
        """End every row under way with ``error`` and start again from empty batches."""
        for row in {*joining, *(row for batch in self._batches.values() for row in batch.rows)}:
            row.put("error", error)
        self._batches.clear()
        with self._changed:
            self._running = self._running_users = 0

    def _admit(self) -> list[Row]:
        """Rows that take the free places: users' first, background ones only when no user waits. A user who
        waits for a full batch takes the place of a background row. Called with the lock held."""
        waited = len(self._waiting)
        self._waiting = deque(row for row in self._waiting if not row.cancelled.is_set())
        users = [row for row in self._waiting if not row.background]
        room = self.max_batch - self._running
        joining = users[:room] if users else list(self._waiting)[:room]
        if len(users) > room:
            self._yield_background(len(users) - room)
        for row in joining:
            self._waiting.remove(row)
        LOCAL_QUEUE_DEPTH.dec(waited - len(self._waiting))
        self._running += len(joining)
        self._running_users += sum(not row.background for row in joining)
        return joining

    def _yield_background(self, places: int) -> None:
        """Stop up to ``places`` background rows, newest first, for users who wait."""
        background = [row for batch in self._batches.values() for row in batch.rows
                      if row.background and not row.cancelled.is_set()]
        for row in background[::-1][:places]:
            row.cancelled.set()
            row.put("error", ProviderBusy("A user's reply needed the place of this background reply."))

    def _batch(self, loaded):
        """The batch of ``loaded``, made when its first row joins."""
        key = id(loaded)
        if key not in self._batches:
            self._batches[key] = loaded.batch()
        return self._batches[key]

    def _step(self) -> None:
        """One step of every batch; batches left empty are dropped (a swapped-out version with them)."""
        before = [row for batch in self._batches.values() for row in batch.rows]
        left = sum(row.cancelled.is_set() for row in before)  # they leave before the step
        for key, batch in list(self._batches.items()):
            batch.step()
            if not batch.rows:
                del self._batches[key]
        rows = [row for batch in self._batches.values() for row in batch.rows]
        with self._changed:
            if len(before) > left:
                self.steps_by_size[len(before) - left] += 1
                LOCAL_BATCH_SIZE.observe(len(before) - left)
            self.left_early += left
            self._running, self._running_users = len(rows), sum(not row.background for row in rows)


def _run_call(future: Future, fn, args: tuple) -> None:
    """Run one call and settle its future."""
    if not future.set_running_or_notify_cancel():
        return
    try:
        future.set_result(fn(*args))
    except BaseException as e:  # the caller gets it, the thread goes on
        future.set_exception(e)
