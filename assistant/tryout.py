"""Replies from any saved version, for an admin to try one before switching: nothing is stored.

Versions are loaded on demand and the last few kept, on a torch thread of their own that decodes tries of the
same version together (assistant.local_decoder), so trying a candidate never touches the version that answers
users.
"""

from __future__ import annotations

from collections import OrderedDict

from assistant.completion import Completion, ProviderFailed
from assistant.local_decoder import Decoder
from assistant.local_provider import LocalStream, fetch_and_load
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
        self._decoder = Decoder("try-model", settings.max_batch, settings.max_queue)

    def reply(self, name: str, messages: list[dict]) -> Completion:
        """``name``'s reply to ``messages``; RegistryError when no intact version has that name, a
        ProviderError when the model fails or runs past LOCAL_TIMEOUT. ``latency_ms`` leaves out loading."""
        loaded = self._decoder.call(self._load, name).result()
        return LocalStream.begin(self._decoder, loaded, messages, self.settings.timeout, self.source).whole()

    def close(self) -> None:
        """Let the torch thread end."""
        self._decoder.close()

    def _load(self, name: str):
        """Runs on the torch thread: the version, kept among the last KEEP used."""
        try:
            loaded = self._loaded.pop(name, None) or fetch_and_load(self.registry, name, self.settings)
        except RegistryError:  # no such version, or the store cannot be reached: the caller tells them apart
            raise
        except Exception as e:  # damaged or unreadable files
            raise ProviderFailed(f"Version {name} could not be loaded ({type(e).__name__}).") from e
        self._loaded[name] = loaded
        while len(self._loaded) > KEEP:
            self._loaded.popitem(last=False)
        return loaded
