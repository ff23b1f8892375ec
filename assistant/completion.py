"""What a model provider returns, and the failures it reports."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Completion:
    """A finished (or cut-short) reply with its bookkeeping."""

    text: str
    model: str
    latency_ms: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    finish_reason: str | None = None
    source: str = "groq"  # groq | local | safety
    fallback: str | None = None  # why the local model did not answer, when Groq answered instead


def without_nul(text: str) -> str:
    """Model text as it can be stored: PostgreSQL text cannot hold NUL, which a model may emit like any byte."""
    return text.replace("\x00", "")


class ProviderError(Exception):
    """A model could not produce a reply; ``code`` names why, the message says it for people."""

    code = "upstream_error"

    def __init__(self, message: str, retry_after: int | None = None):
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class ProviderUnavailable(ProviderError):
    """The provider is not configured."""

    code = "assistant_unavailable"


class ProviderRateLimited(ProviderError):
    """The provider asked us to slow down."""

    code = "upstream_rate_limited"


class ProviderBusy(ProviderError):
    """The provider has more replies under way and waiting than it takes on."""

    code = "assistant_busy"


class ProviderTimeout(ProviderError):
    """The provider did not answer in time."""

    code = "upstream_timeout"


class ProviderFailed(ProviderError):
    """The provider answered with an error, or with something we cannot read."""

    code = "upstream_error"


class ProviderPromptTooLong(ProviderFailed):
    """The conversation does not fit the model's context with room for a reply."""

    code = "conversation_too_long"
