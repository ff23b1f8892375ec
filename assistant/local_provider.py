"""Replies from the active local model version, whole or streamed.

Each process reads the active version from the database, fetches it through the
registry (verified, from the bucket when there is one) and loads it once; every
MODEL_POLL_SECONDS it looks again, loads a newly activated version beside the old
and swaps the reference, so replies in flight finish on the version they started
with. Until a version is loaded, or when anything goes wrong, the methods raise a
ProviderError and the router asks Groq instead.

All torch work (loading and generating) runs on one long-lived thread per
process, which decodes every reply under way in one batch (assistant.local_decoder).
LOCAL_TIMEOUT bounds a reply, its wait for a place included; a reply that finds the
queue full or cannot start in time falls back to Groq (ProviderBusy).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Iterator

from assistant.completion import (
    Completion, ProviderBusy, ProviderError, ProviderFailed, ProviderPromptTooLong, ProviderTimeout,
    ProviderUnavailable,
)
from assistant.local_decoder import Decoder, Row
from config import LocalSettings
from registry.registry import Registry
from registry.versions import RegistryError

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
        self._decoder = Decoder("local-model", settings.max_batch, settings.max_queue, nice)
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="local-model-watcher", daemon=True)
        self._watcher.start()

    def status(self) -> dict:
        """What this process serves, for /api/stats."""
        loaded = self.loaded
        return {"loaded_version": loaded.version if loaded else None, "load_error": self.load_error,
                "batching": self._decoder.status()}

    def ready(self) -> bool:
        """True once this process serves the active version, has given up on it, or none is active."""
        return self._settled.is_set() or self.registry.active_name() is None

    def complete(self, messages: list[dict], background: bool = False) -> Completion:
        """The whole reply; LOCAL_TIMEOUT bounds the wait for a place and the generation."""
        return self.stream(messages, background).whole()

    def stream(self, messages: list[dict], background: bool = False) -> "LocalStream":
        """Start a reply and wait for its first token, so that failures up to then can still fall back.
        ``background`` (shadow traffic): the reply yields its place to users' replies."""
        loaded = self.loaded
        if loaded is None:
            raise ProviderUnavailable(f"No local model is loaded ({self.load_error or 'no active version'}).")
        return LocalStream.begin(self._decoder, loaded, messages, self.settings.timeout, self.source, background)

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
            self.loaded = self._decoder.call(fetch_and_load, self.registry, name, self.settings).result()
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
        self._decoder.close()

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

    def __init__(self, decoder: Decoder, row: Row, completion: Completion, started: float):
        self.decoder, self.row, self.loaded = decoder, row, row.loaded
        self.completion, self.started = completion, started
        self._ids: list[int] = []
        self._first: list[int] = []
        self._ended = False

    @classmethod
    def begin(cls, decoder: Decoder, loaded, messages: list[dict], timeout: float, source: str,
              background: bool = False) -> "LocalStream":
        """Queue a reply of ``loaded`` with ``decoder`` and wait for its first token; ``timeout`` seconds from
        now bound it."""
        started = time.monotonic()
        row = decoder.submit(Row(loaded, messages, started + timeout, background))
        return cls(decoder, row, Completion(text="", model=loaded.version, source=source), started).start()

    def start(self) -> "LocalStream":
        """Wait for the prompt's length and the first token (or the end); closed again if that fails."""
        try:
            kind, value = self._next()
            self.completion.prompt_tokens = value
            kind, value = self._next()
        except BaseException:
            self.close()
            raise
        self._first = [value] if kind == "token" else []
        self._ended = kind == "end"
        return self

    def whole(self) -> Completion:
        """Read the reply to its end."""
        try:
            for _ in self:
                pass
        finally:
            self.close()
        return self.completion

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
        """Stop generating (the client may have left): the row leaves the batch at the next step. Note the counts."""
        self.decoder.withdraw(self.row)
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
            kind, value = self.row.items.get(timeout=max(0.0, self.row.deadline - time.monotonic()))
        except queue.Empty:
            if self.decoder.withdraw(self.row):
                raise ProviderBusy("The local model had no place for this reply within LOCAL_TIMEOUT.") from None
            raise ProviderTimeout("The local model did not answer within LOCAL_TIMEOUT.") from None
        if kind == "error":
            raise provider_error(value)
        return kind, value


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


def provider_error(error: Exception) -> ProviderError:
    """What the model code raised, as the provider error the router understands."""
    from assistant.local_batch import DeadlineExceeded
    from assistant.local_model import PromptTooLong

    if isinstance(error, ProviderError):  # already one (a background reply that gave its place up)
        return error
    if isinstance(error, DeadlineExceeded):
        return ProviderTimeout("The local model took longer than LOCAL_TIMEOUT.")
    if isinstance(error, PromptTooLong):
        return ProviderPromptTooLong(f"The conversation is too long for the local model: {error}.")
    log.error("The local model failed while answering: %s", type(error).__name__)
    return ProviderFailed("The local model failed while answering.")
