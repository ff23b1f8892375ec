"""Replies from the active local model version, whole or streamed.

Each process reads the active version from the database, fetches it through the
registry (verified, from the bucket when there is one) and loads it once; every
MODEL_POLL_SECONDS it looks again, loads a newly activated version beside the old
and swaps the reference, so replies in flight finish on the version they started
with. Until a version is loaded, or when anything goes wrong, the methods raise a
ProviderError and the router asks Groq instead.

All torch work (loading and generating) runs on one long-lived thread per
process. Torch's CPU thread pool is per calling thread: generating from several
request threads in turn slowed every reply by more than half on two cores
(45 -> 19 tokens/s, measured on SmolLM2-135M's shape). Requests queue for that
thread; LOCAL_TIMEOUT bounds the wait, and a reply that cannot start in time
falls back to Groq.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

from assistant.completion import (
    Completion, ProviderError, ProviderFailed, ProviderPromptTooLong, ProviderTimeout, ProviderUnavailable,
)
from config import LocalSettings
from registry.registry import Registry
from registry.versions import RegistryError
from telemetry.metrics import LOCAL_BATCH_SIZE, LOCAL_QUEUE_DEPTH, LOCAL_TOKENS

log = logging.getLogger(__name__)
RETRY_FAILED_S = 300.0  # a version that failed to load is tried again after this long, not at every poll


class LocalProvider:
    """The active version, kept current by a watcher thread."""

    source = "local"

    def __init__(self, registry: Registry, settings: LocalSettings, nice: int = 0):
        """``nice``: the torch thread's niceness (Linux sets it per thread), for work that must yield to requests."""
        self.registry = registry
        self.settings = settings
        self.loaded = None  # a LoadedModel; replaced whole, never changed in place
        self.load_error: str | None = None
        self._failed: tuple[str, float] | None = None  # the version that failed to load, and when
        self._settled = threading.Event()  # the first look for the active version has ended, however it went
        self._torch = torch_thread("local-model", nice)
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="local-model-watcher", daemon=True)
        self._watcher.start()

    def status(self) -> dict:
        """What this process serves, for /api/stats."""
        loaded = self.loaded
        return {"loaded_version": loaded.version if loaded else None, "load_error": self.load_error}

    def ready(self) -> bool:
        """True once this process serves the active version, has given up on it, or none is active."""
        return self._settled.is_set() or self.registry.active_name() is None

    def complete(self, messages: list[dict]) -> Completion:
        """The whole reply; LOCAL_TIMEOUT bounds the wait for a turn and the generation."""
        stream = self.stream(messages)
        try:
            for _ in stream:
                pass
        finally:
            stream.close()
        return stream.completion

    def stream(self, messages: list[dict]) -> "LocalStream":
        """Start a reply and wait for its first token, so that failures up to then can still fall back."""
        started = time.monotonic()
        loaded = self.loaded
        if loaded is None:
            raise ProviderUnavailable(f"No local model is loaded ({self.load_error or 'no active version'}).")
        stream = LocalStream(loaded, Completion(text="", model=loaded.version, source=self.source), started,
                             started + self.settings.timeout)
        LOCAL_QUEUE_DEPTH.inc()  # until the torch thread takes the request
        self._torch.submit(_generate, loaded, messages, stream.deadline, stream.items, stream.cancelled)
        try:
            stream.start()
        except BaseException:
            stream.close()
            raise
        return stream

    def refresh(self) -> None:
        """Load the active version if it is not the one in memory; drop the model when none is active."""
        name = self.registry.active_name()
        current = self.loaded
        if name is None:
            if current is not None:
                log.warning("No active model version any more: local replies are off")
            self.loaded, self.load_error = None, "no active version"
            return
        if (current and current.version == name) or self._gave_up_on(name):
            return
        started = time.monotonic()
        try:
            self.loaded = self._torch.submit(fetch_and_load, self.registry, name, self.settings).result()
        except Exception as e:  # a damaged, missing or unreadable version must not take the worker down
            self._failed, self.load_error = (name, time.monotonic()), f"{name}: {type(e).__name__}: {e}"[:500]
            log.error("Local model %s could not be loaded, replies fall back to Groq: %s", name, self.load_error)
            return
        self.load_error = None
        log.info("Local model loaded: %s (%.1fs)", name, time.monotonic() - started)

    def _gave_up_on(self, name: str) -> bool:
        """True while ``name`` failed to load less than RETRY_FAILED_S ago (the store may have been down)."""
        return self._failed is not None and self._failed[0] == name and \
            time.monotonic() - self._failed[1] < RETRY_FAILED_S

    def close(self) -> None:
        """Stop watching for new versions and let the torch thread end."""
        self._stop.set()
        self._torch.shutdown(wait=False, cancel_futures=True)

    def _watch(self) -> None:
        """Refresh now and then every MODEL_POLL_SECONDS, until closed."""
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception:  # the watcher must outlive a bad moment of the database or the store
                log.exception("Looking for a new local model version failed")
            self._settled.set()
            self._stop.wait(self.settings.poll_seconds)


class LocalStream:
    """Iterate for text deltas; ``completion`` holds the text and counts so far."""

    def __init__(self, loaded, completion: Completion, started: float, deadline: float):
        self.loaded = loaded
        self.completion = completion
        self.started, self.deadline = started, deadline
        self.items: queue.Queue = queue.Queue()  # (kind, value) from the torch thread
        self.cancelled = threading.Event()
        self._ids: list[int] = []
        self._first: list[int] = []
        self._ended = False

    def start(self) -> None:
        """Wait for the prompt's length and the first token (or the end)."""
        kind, value = self._next()
        self.completion.prompt_tokens = value
        kind, value = self._next()
        self._first = [value] if kind == "token" else []
        self._ended = kind == "end"

    def __iter__(self) -> Iterator[str]:
        for token in self._tokens():
            self._ids.append(token)
            text = self.loaded.text(self._ids)
            if text.endswith("\ufffd"):  # half of a multi-byte character: wait for the rest
                continue
            delta, self.completion.text = text[len(self.completion.text):], text
            if delta:
                yield delta
        self.completion.finish_reason = "length" if len(self._ids) >= self.loaded.settings.max_new_tokens else "stop"
        self.close()

    def close(self) -> None:
        """Stop generating (the client may have left) and note the counts."""
        self.cancelled.set()
        self.completion.completion_tokens = len(self._ids)
        self.completion.latency_ms = self.completion.latency_ms or round((time.monotonic() - self.started) * 1000)

    def _tokens(self) -> Iterator[int]:
        yield from self._first
        while not self._ended:
            kind, value = self._next()
            if kind == "end":
                return
            yield value

    def _next(self) -> tuple[str, object]:
        """The next item from the torch thread, or the provider error it stands for."""
        try:
            kind, value = self.items.get(timeout=max(0.0, self.deadline - time.monotonic()))
        except queue.Empty:
            raise ProviderTimeout("The local model did not answer within LOCAL_TIMEOUT.") from None
        if kind == "error":
            raise value
        return kind, value


def torch_thread(name: str, nice: int = 0) -> ThreadPoolExecutor:
    """The one thread that runs all of an owner's torch work (loading and generating), at niceness ``nice``."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix=name, initializer=_be_nice, initargs=(nice,))


def _be_nice(nice: int) -> None:
    """Lower this thread's CPU priority by ``nice``."""
    if nice:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)


def fetch_and_load(registry: Registry, name: str, settings: LocalSettings):
    """Runs on the torch thread: the version's files, fetched and verified, then its tokenizer and weights
    (assistant.local_model.load_version), ready to answer."""
    from assistant.local_model import LoadedModel  # imports torch
    from hardware import set_torch_threads

    version = registry.get(name)
    if version is None:
        raise RegistryError(f"the active version {name} is not complete in {registry.location}")
    path = registry.local(version)
    set_torch_threads(settings.threads)
    return LoadedModel.load(name, path, settings)


def _generate(loaded, messages: list[dict], deadline: float, items: queue.Queue, cancelled: threading.Event) -> None:
    """Runs on the torch thread: put ("prompt", n), then ("token", id)..., then ("end", None) or ("error", e)."""
    LOCAL_QUEUE_DEPTH.dec()
    if cancelled.is_set():  # the request gave up while it waited its turn
        return
    LOCAL_BATCH_SIZE.observe(1)  # one reply per generation: the decode loop does not batch
    try:
        ids = loaded.prompt(messages)
        items.put(("prompt", ids.shape[1]))
        for token in loaded.tokens(ids, deadline):
            if cancelled.is_set():
                return
            LOCAL_TOKENS.inc()
            items.put(("token", token))
        items.put(("end", None))
    except Exception as e:
        items.put(("error", provider_error(e)))


def provider_error(error: Exception) -> ProviderError:
    """What the model code raised, as the provider error the router understands."""
    from assistant.local_model import DeadlineExceeded, PromptTooLong

    if isinstance(error, DeadlineExceeded):
        return ProviderTimeout("The local model took longer than LOCAL_TIMEOUT.")
    if isinstance(error, PromptTooLong):
        return ProviderPromptTooLong(f"The conversation is too long for the local model: {error}.")
    log.error("The local model failed while answering: %s", type(error).__name__)
    return ProviderFailed("The local model failed while answering.")
