"""Every environment flag, parsed and validated once.

Nothing else in the project reads ``os.environ``: modules receive a ``Settings``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

DEFAULT_DATABASE_URL = "sqlite:///data/ai_training_data.db"
DEFAULT_CRISIS_RESOURCES = (
    "If you are in the US, call or text 988 (Suicide & Crisis Lifeline), "
    "or text HOME to 741741 (Crisis Text Line). "
    "If you or someone else is in immediate danger, call 911."
)


class ConfigError(ValueError):
    """A flag has a value the service cannot run with."""


@dataclass(frozen=True)
class Settings:
    """The service's configuration; build it with ``Settings.from_env``."""

    groq_api_key: str | None = None
    groq_model: str = "openai/gpt-oss-20b"
    groq_base_url: str | None = None  # None lets the SDK use api.groq.com
    groq_timeout: float = 30.0
    groq_max_retries: int = 2
    groq_max_tokens: int = 1024
    database_url: str = DEFAULT_DATABASE_URL
    use_local_ai: bool = False
    enable_auto_training: bool = False
    auto_train_threshold: int = 100
    model_dir: str = "./models"
    base_model: str = "HuggingFaceTB/SmolLM2-135M-Instruct"
    admin_token: str | None = None
    max_message_chars: int = 4000
    history_turns: int = 10
    training_consent_default: bool = True
    crisis_resources: str = DEFAULT_CRISIS_RESOURCES
    port: int = 8000
    web_concurrency: int = 2
    web_threads: int = 4
    log_level: str = "INFO"
    railway_environment: str | None = None
    railway_volume_mount_path: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """Parse the flags from ``environ`` (the process environment by default)."""
        env = _Env(os.environ if environ is None else environ)
        volume = env.text("RAILWAY_VOLUME_MOUNT_PATH")
        return cls(
            groq_api_key=env.text("GROQ_API_KEY"),
            groq_model=env.text("GROQ_MODEL") or cls.groq_model,
            groq_base_url=env.text("GROQ_BASE_URL"),
            groq_timeout=env.number("GROQ_TIMEOUT", cls.groq_timeout, float, minimum=0.1),
            groq_max_retries=env.number("GROQ_MAX_RETRIES", cls.groq_max_retries, int, minimum=0),
            groq_max_tokens=env.number("GROQ_MAX_TOKENS", cls.groq_max_tokens, int, minimum=1),
            database_url=env.text("DATABASE_URL") or env.text("DB_URL") or DEFAULT_DATABASE_URL,
            use_local_ai=env.flag("USE_LOCAL_AI", False),
            enable_auto_training=env.flag("ENABLE_AUTO_TRAINING", False),
            auto_train_threshold=env.number("AUTO_TRAIN_THRESHOLD", 100, int, minimum=1),
            model_dir=env.text("MODEL_DIR") or volume or cls.model_dir,
            base_model=env.text("BASE_MODEL") or cls.base_model,
            admin_token=env.text("ADMIN_TOKEN"),
            max_message_chars=env.number("MAX_MESSAGE_CHARS", 4000, int, minimum=1),
            history_turns=env.number("HISTORY_TURNS", 10, int, minimum=0),
            training_consent_default=env.flag("TRAINING_CONSENT_DEFAULT", True),
            crisis_resources=env.text("CRISIS_RESOURCES") or DEFAULT_CRISIS_RESOURCES,
            port=env.number("PORT", 8000, int, minimum=1, maximum=65535),
            web_concurrency=env.number("WEB_CONCURRENCY", 2, int, minimum=1),
            web_threads=env.number("WEB_THREADS", 4, int, minimum=1),
            log_level=env.choice("LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR")),
            railway_environment=env.text("RAILWAY_ENVIRONMENT"),
            railway_volume_mount_path=volume,
        )

    @property
    def on_railway(self) -> bool:
        """True when Railway runs this process."""
        return self.railway_environment is not None

    def is_on_volume(self, path: str | Path) -> bool:
        """True when ``path`` lies inside the Railway volume."""
        if not self.railway_volume_mount_path:
            return False
        volume = Path(self.railway_volume_mount_path).resolve()
        return Path(path).resolve().is_relative_to(volume)


class _Env:
    """Reads flags from a mapping and explains bad values by flag name."""

    _TRUE = {"1", "true", "yes", "on"}
    _FALSE = {"0", "false", "no", "off"}

    def __init__(self, environ: Mapping[str, str]):
        self.environ = environ

    def text(self, name: str) -> str | None:
        """The flag's value stripped, or None when unset or blank."""
        value = self.environ.get(name, "").strip()
        return value or None

    def flag(self, name: str, default: bool) -> bool:
        """A boolean flag: 1/0, true/false, yes/no, on/off."""
        value = self.text(name)
        if value is None:
            return default
        if value.lower() in self._TRUE:
            return True
        if value.lower() in self._FALSE:
            return False
        raise ConfigError(f"{name} must be 1 or 0 (or true/false), not {value!r}.")

    def number(self, name: str, default, kind: Callable, minimum=None, maximum=None):
        """An int or float flag within [minimum, maximum]."""
        value = self.text(name)
        if value is None:
            return default
        try:
            parsed = kind(value)
        except ValueError:
            kind_name = "whole number" if kind is int else "number"
            raise ConfigError(f"{name} must be a {kind_name}, not {value!r}.") from None
        if (minimum is not None and parsed < minimum) or (maximum is not None and parsed > maximum):
            bounds = f"at least {minimum}" if maximum is None else f"between {minimum} and {maximum}"
            raise ConfigError(f"{name} must be {bounds}, not {value!r}.")
        return parsed

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        """One of a fixed set of values, case-insensitive."""
        value = (self.text(name) or default).upper()
        if value not in choices:
            raise ConfigError(f"{name} must be one of {', '.join(choices)}, not {value!r}.")
        return value
