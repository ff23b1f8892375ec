"""Replies from Groq through the official SDK, whole or streamed."""

from __future__ import annotations

import copy
import logging
import time
from contextlib import contextmanager
from typing import Iterator

import groq
import httpx
from groq.types.chat import ChatCompletion, ChatCompletionChunk

from assistant.completion import (
    Completion, ProviderError, ProviderFailed, ProviderRateLimited, ProviderTimeout, ProviderUnavailable, without_nul,
)
from config import Settings
from telemetry.metrics import GROQ_DURATION, GROQ_ERRORS, GROQ_FIRST_TOKEN

log = logging.getLogger(__name__)

CHAT_COMPLETIONS_PATH = "/openai/v1/chat/completions"


class GroqProvider:
    """One SDK client per process; its connection pool is shared by all threads."""

    source = "groq"

    def __init__(self, settings: Settings):
        self.model = settings.groq_model
        self.max_tokens = settings.groq_max_tokens
        self.extra: dict = {}  # more fields for the request body
        self.client = None
        if settings.groq_api_key:
            self.client = groq.Groq(
                api_key=settings.groq_api_key,
                base_url=settings.groq_base_url,
                timeout=settings.groq_timeout,
                max_retries=settings.groq_max_retries,  # the SDK backs off exponentially
            )

    @property
    def configured(self) -> bool:
        """Whether an API key was given."""
        return self.client is not None

    def variant(self, model: str, timeout: float, max_tokens: int | None = None, **extra) -> "GroqProvider":
        """The same client and connection pool asking another model, with its own deadline and no retries."""
        other = copy.copy(self)
        other.model, other.max_tokens, other.extra = model, max_tokens or self.max_tokens, extra
        if self.client is not None:
            other.client = self.client.with_options(timeout=timeout, max_retries=0)
        return other

    def complete(self, messages: list[dict]) -> Completion:
        """The whole reply in one call."""
        started = time.monotonic()
        with _translated_errors(), GROQ_DURATION.time():
            response = self._create(messages, stream=False)
            choice = response.choices[0]
            usage = response.usage
            return Completion(
                text=without_nul(choice.message.content or ""),
                model=response.model or self.model,
                latency_ms=_elapsed_ms(started),
                prompt_tokens=usage.prompt_tokens if usage else None,
                completion_tokens=usage.completion_tokens if usage else None,
                finish_reason=choice.finish_reason,
            )

    def stream(self, messages: list[dict]) -> "GroqStream":
        """Open a streamed reply; errors before the first byte are raised here."""
        started = time.monotonic()
        try:
            with _translated_errors():
                upstream = self._create(messages, stream=True)
        except ProviderError:
            GROQ_DURATION.observe(time.monotonic() - started)
            raise
        return GroqStream(upstream, Completion(text="", model=self.model), started)

    def _create(self, messages: list[dict], stream: bool):
        """One chat-completions request."""
        if self.client is None:
            raise ProviderUnavailable(
                "The assistant is not configured yet: the server has no GROQ_API_KEY. Please try again later."
            )
        # The SDK's own route, minus `chat.completions.create`'s per-message TypedDict
        # transform: ~0.13 ms of CPU per message, an identity for plain-text messages.
        return self.client.post(
            CHAT_COMPLETIONS_PATH,
            body={"model": self.model, "messages": messages, "max_completion_tokens": self.max_tokens,
                  "stream": stream, **self.extra},
            cast_to=ChatCompletion, stream=stream, stream_cls=groq.Stream[ChatCompletionChunk],
        )


class GroqStream:
    """Iterate for text deltas; ``completion`` holds the text and counts so far."""

    def __init__(self, upstream, completion: Completion, started: float):
        self.upstream = upstream
        self.completion = completion
        self.started = started
        self.timed = False  # the call's duration is recorded once, when it ends or is closed

    def __iter__(self) -> Iterator[str]:
        with _translated_errors():
            for chunk in self.upstream:
                self._count(chunk)
                if chunk.choices:
                    choice = chunk.choices[0]
                    self.completion.finish_reason = choice.finish_reason or self.completion.finish_reason
                    if delta := without_nul(choice.delta.content or ""):
                        if not self.completion.text:
                            GROQ_FIRST_TOKEN.observe(time.monotonic() - self.started)
                        self.completion.text += delta
                        yield delta
            self.completion.latency_ms = _elapsed_ms(self.started)
            if self.completion.finish_reason is None:  # the SDK ends quietly when the connection drops
                log.error("Groq's stream ended before the reply was finished")
                raise ProviderFailed("The assistant's reply was cut off. Please try again.")

    def _count(self, chunk) -> None:
        """Take the model name and token usage from the chunk that carries them."""
        self.completion.model = chunk.model or self.completion.model
        # Groq reports usage under x_groq on the last chunk; OpenAI-style servers under usage.
        usage = chunk.usage or (chunk.x_groq.usage if chunk.x_groq else None)
        if usage:
            self.completion.prompt_tokens = usage.prompt_tokens
            self.completion.completion_tokens = usage.completion_tokens

    def close(self) -> None:
        """Stop reading from Groq and free the connection."""
        self.completion.latency_ms = self.completion.latency_ms or _elapsed_ms(self.started)
        if not self.timed:
            self.timed = True
            GROQ_DURATION.observe(time.monotonic() - self.started)
        self.upstream.close()


def _elapsed_ms(started: float) -> int:
    """Whole milliseconds since ``started``."""
    return round((time.monotonic() - started) * 1000)


@contextmanager
def _translated_errors():
    """The SDK's exceptions as the provider errors the web layer maps to HTTP, each counted by its code."""
    try:
        with _sdk_errors_translated():
            yield
    except ProviderError as e:
        GROQ_ERRORS.labels(e.code).inc()
        raise


@contextmanager
def _sdk_errors_translated():
    """Turn the SDK's exceptions into the provider errors the web layer maps to HTTP."""
    try:
        yield
    except ProviderError:
        raise
    except groq.RateLimitError as e:
        raise ProviderRateLimited(
            "The assistant is busy right now. Please wait a moment and try again.",
            retry_after=_retry_after(e.response.headers),
        ) from e
    except groq.APITimeoutError as e:
        log.warning("Groq timed out")
        raise ProviderTimeout("The assistant took too long to answer. Please try again.") from e
    except groq.APIStatusError as e:
        log.error("Groq answered HTTP %s", e.status_code)
        raise ProviderFailed("The assistant service returned an error. Please try again.") from e
    except groq.APIConnectionError as e:
        log.error("Groq could not be reached: %s", type(e.__cause__ or e).__name__)
        raise ProviderFailed("The assistant service could not be reached. Please try again.") from e
    except httpx.TimeoutException as e:  # a stream that stalls: the SDK lets httpx's own errors through
        log.warning("Groq's stream stalled: %s", type(e).__name__)
        raise ProviderTimeout("The assistant stopped answering midway. Please try again.") from e
    except httpx.TransportError as e:  # a stream whose connection broke (reset, protocol error)
        log.error("Groq's stream broke: %s", type(e).__name__)
        raise ProviderFailed("The connection to the assistant broke midway. Please try again.") from e
    except (groq.APIError, ValueError, AttributeError, IndexError) as e:
        log.error("Groq sent a reply we could not read: %s", type(e).__name__)
        raise ProviderFailed("The assistant service sent an unreadable reply. Please try again.") from e


def _retry_after(headers) -> int:
    """Seconds the client should wait, from Retry-After when Groq sent one."""
    try:
        return max(1, round(float(headers.get("retry-after", ""))))
    except ValueError:
        return 5
