"""Who answers: the local model when USE_LOCAL_AI=1 and it can, Groq otherwise."""

from __future__ import annotations

import logging

from assistant.completion import Completion, ProviderBusy, ProviderError, ProviderTimeout, ProviderUnavailable
from telemetry.metrics import FALLBACKS

log = logging.getLogger(__name__)

# The reason stored with a reply Groq gave in the local model's place.
FALLBACK_REASONS = {ProviderUnavailable: "local_unavailable", ProviderTimeout: "local_timeout",
                    ProviderBusy: "local_busy"}
OTHER_REASON = "local_error"
for _reason in (*FALLBACK_REASONS.values(), OTHER_REASON):  # every series from zero: the first fallback counts
    FALLBACKS.labels(_reason)


class Router:
    """Same interface as a provider. Errors it raises are Groq's: the local model's are never final."""

    def __init__(self, groq, local=None):
        self.groq = groq
        self.local = local
        self.source, self.model = groq.source, groq.model  # who is blamed when no reply comes

    @property
    def configured(self) -> bool:
        """Whether Groq, the provider of last resort, has an API key."""
        return self.groq.configured

    def complete(self, messages: list[dict]) -> Completion:
        """The whole reply, from the local model if it manages."""
        fallback = None
        if self.local is not None:
            try:
                return self.local.complete(messages)
            except ProviderError as e:
                fallback = _fell_back(e)
        completion = self.groq.complete(messages)
        completion.fallback = fallback
        return completion

    def stream(self, messages: list[dict]):
        """A streamed reply; the local model may fail over to Groq until its first token."""
        fallback = None
        if self.local is not None:
            try:
                return self.local.stream(messages)
            except ProviderError as e:
                fallback = _fell_back(e)
        stream = self.groq.stream(messages)
        stream.completion.fallback = fallback
        return stream


def _fell_back(error: ProviderError) -> str:
    """Log why the local model did not answer; the reason to store with Groq's reply."""
    reason = FALLBACK_REASONS.get(type(error), OTHER_REASON)
    FALLBACKS.labels(reason).inc()
    log.warning("Local model did not answer (%s: %s): Groq answers instead", reason, error.message)
    return reason
