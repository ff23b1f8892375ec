"""Replies from any saved version, for an admin to try one before switching: nothing is stored.

Versions are loaded on demand and the last few kept, on a torch thread of their own (one
reply at a time: torch's CPU pool is per calling thread, see local_provider), so trying a
candidate never touches the version that answers users.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from assistant.completion import Completion, ProviderFailed
from assistant.local_provider import fetch_and_load, provider_error, torch_thread
from config import LocalSettings
from registry.registry import Registry
from registry.versions import RegistryError

KEEP = 2  # versions kept loaded per process: SmolLM2-135M takes about 200 MB with int8 weights


class TryOut:
    """Whole replies from named versions."""

    source = "local"

    def __init__(self, registry: Registry, settings: LocalSettings):
        self.registry, self.settings = registry, settings
        self._loaded: OrderedDict[str, object] = OrderedDict()  # name -> LoadedModel, least recently used first
        self._torch = torch_thread("try-model")

    def reply(self, name: str, messages: list[dict]) -> Completion:
        """``name``'s reply to ``messages``; RegistryError when no intact version has that name, a
        ProviderError when the model fails or runs past LOCAL_TIMEOUT. ``latency_ms`` leaves out loading."""
        return self._torch.submit(self._reply, name, messages).result()

    def close(self) -> None:
        """Let the torch thread end."""
        self._torch.shutdown(wait=False, cancel_futures=True)

    def _reply(self, name: str, messages: list[dict]) -> Completion:
        """Runs on the torch thread."""
        try:
            loaded = self._loaded.pop(name, None) or fetch_and_load(self.registry, name, self.settings)
        except RegistryError:  # no such version, or the store cannot be reached: the caller tells them apart
            raise
        except Exception as e:  # damaged or unreadable files
            raise ProviderFailed(f"Version {name} could not be loaded ({type(e).__name__}).") from e
        self._loaded[name] = loaded
        while len(self._loaded) > KEEP:
            self._loaded.popitem(last=False)
        started = time.monotonic()
        try:
            text, finished = loaded.reply(messages, started + self.settings.timeout)
        except Exception as e:
            raise provider_error(e) from e
        return Completion(text=text, model=name, source=self.source, finish_reason="stop" if finished else "length",
                          latency_ms=round((time.monotonic() - started) * 1000))
