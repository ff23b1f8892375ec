"""Replies from the active local model version, whole or streamed.

Each process loads the active version once, in a background thread, and looks
for a newer one every MODEL_POLL_SECONDS: it loads the new version beside the
old and swaps the reference, so requests in flight finish on the version they
started with. Until a version is loaded, or when anything goes wrong, the
methods raise a ProviderError and the router asks Groq instead.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from typing import Iterator

from assistant.completion import Completion, ProviderFailed, ProviderTimeout, ProviderUnavailable
from config import LocalSettings
from trainer.registry import Registry

log = logging.getLogger(__name__)


class LocalProvider:
    """The active version of MODEL_DIR, kept current by a watcher thread."""

    source = "local"

    def __init__(self, model_dir: str, settings: LocalSettings):
        self.registry = Registry(model_dir)
        self.settings = settings
        self.loaded = None  # a LoadedModel; replaced whole, never changed in place
        self.load_error: str | None = None
        self._failed_version: str | None = None
        self._one_at_a_time = threading.Semaphore(1)  # two replies at once would only halve each one's speed
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="local-model-watcher", daemon=True)
        self._watcher.start()

    @property
    def model(self) -> str:
        """The version answering now."""
        loaded = self.loaded
        return loaded.version if loaded else "local"

    def status(self) -> dict:
        """What this process serves, for /api/stats."""
        return {"loaded_version": self.loaded and self.loaded.version, "load_error": self.load_error}

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
        """Start a reply: everything up to the first token happens here, so its failures can still fall back."""
        started = time.monotonic()
        deadline = started + self.settings.timeout
        loaded = self.loaded
        if loaded is None:
            raise ProviderUnavailable(f"No local model is loaded ({self.load_error or 'no active version'}).")
        if not self._one_at_a_time.acquire(timeout=self.settings.timeout):
            raise ProviderTimeout("The local model was busy for longer than LOCAL_TIMEOUT.")
        try:
            with _generation_errors():
                ids = loaded.prompt(messages)
                stream = LocalStream(loaded, loaded.tokens(ids, deadline), self._one_at_a_time,
                                     Completion(text="", model=loaded.version, source=self.source,
                                                prompt_tokens=ids.shape[1], completion_tokens=0), started)
                stream.first = next(stream.tokens, None)
                return stream
        except BaseException:
            self._one_at_a_time.release()
            raise

    def refresh(self) -> None:
        """Load the active version if it is not the one in memory; drop the model when none is active."""
        active = self.registry.active()
        current = self.loaded
        if active is None:
            if current is not None:
                log.warning("No intact active model version any more: local replies are off")
            self.loaded, self.load_error = None, "no active version"
            return
        if (current and current.version == active.name) or active.name == self._failed_version:
            return
        started = time.monotonic()
        try:
            from assistant.local_model import LoadedModel  # imports torch
            from hardware import set_torch_threads

            set_torch_threads(self.settings.threads)
            self.loaded = LoadedModel(active.name, active.path, self.settings)
        except Exception as e:  # a corrupt or unreadable version must not take the worker down
            self._failed_version, self.load_error = active.name, f"{active.name}: {type(e).__name__}: {e}"[:500]
            log.error("Local model %s could not be loaded, replies fall back to Groq: %s", active.name, self.load_error)
            return
        self.load_error = None
        log.info("Local model loaded: %s (%.1fs)", active.name, time.monotonic() - started)

    def close(self) -> None:
        """Stop watching for new versions."""
        self._stop.set()

    def _watch(self) -> None:
        """Refresh now and then every MODEL_POLL_SECONDS, until closed."""
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception:  # the watcher must outlive a bad moment on the volume
                log.exception("Looking for a new local model version failed")
            self._stop.wait(self.settings.poll_seconds)


class LocalStream:
    """Iterate for text deltas; ``completion`` holds the text and counts so far."""

    def __init__(self, loaded, tokens: Iterator[int], turn: threading.Semaphore, completion: Completion,
                 started: float):
        self.loaded = loaded
        self.tokens = tokens
        self.first: int | None = None
        self.completion = completion
        self._turn = turn
        self._started = started
        self._ids: list[int] = []
        self._closed = False

    def __iter__(self) -> Iterator[str]:
        with _generation_errors():
            pending = [] if self.first is None else [self.first]
            for token in _chain(pending, self.tokens):
                self._ids.append(token)
                text = self.loaded.text(self._ids)
                if text.endswith("\ufffd"):  # half of a multi-byte character: wait for the rest
                    continue
                delta, self.completion.text = text[len(self.completion.text):], text
                self.completion.completion_tokens = len(self._ids)
                if delta:
                    yield delta
        self.completion.completion_tokens = len(self._ids)
        self.completion.finish_reason = "length" if len(self._ids) >= self.loaded.settings.max_new_tokens else "stop"
        self.close()

    def close(self) -> None:
        """Free the model for the next reply."""
        self.completion.latency_ms = self.completion.latency_ms or round((time.monotonic() - self._started) * 1000)
        if not self._closed:
            self._closed = True
            self.tokens.close()
            self._turn.release()


def _chain(first: list[int], rest: Iterator[int]) -> Iterator[int]:
    """The already computed first token, then the rest."""
    yield from first
    yield from rest


@contextmanager
def _generation_errors():
    """Turn what the model code raises into provider errors the router understands."""
    from assistant.local_model import DeadlineExceeded, PromptTooLong

    try:
        yield
    except DeadlineExceeded as e:
        raise ProviderTimeout("The local model took longer than LOCAL_TIMEOUT.") from e
    except PromptTooLong as e:
        raise ProviderFailed(f"The conversation is too long for the local model: {e}.") from e
    except (RuntimeError, ValueError, IndexError, TypeError) as e:
        log.error("The local model failed while answering: %s", type(e).__name__)
        raise ProviderFailed("The local model failed while answering.") from e
