"""Every environment flag, parsed and validated once.

Nothing else in the project reads ``os.environ``: modules receive a ``Settings``.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Mapping

DEFAULT_DATABASE_URL = "sqlite:///data/ai_training_data.db"


class ConfigError(ValueError):
    """A flag has a value the service cannot run with."""


@dataclass(frozen=True)
class TrainSettings:
    """Fine-tuning knobs; each has a default that fits a 2 GB, 2-core container."""

    full_finetune: bool = False  # TRAIN_FULL: update every weight instead of LoRA adapters
    lora_r: int = 16  # LORA_R: adapter rank
    lora_alpha: int = 32  # LORA_ALPHA: adapter scale numerator
    lora_dropout: float = 0.0  # LORA_DROPOUT: 0.05 costs a third of the throughput on CPU
    epochs: int = 2  # TRAIN_EPOCHS: passes over the training split
    learning_rate: float = 2e-4  # TRAIN_LR: peak, after warm-up, decayed linearly to zero
    warmup_ratio: float = 0.1  # TRAIN_WARMUP_RATIO: share of steps spent warming up
    batch_tokens: int = 1024  # TRAIN_BATCH_TOKENS: padded tokens per micro-batch (memory grows with it)
    grad_accum: int = 2  # TRAIN_GRAD_ACCUM: micro-batches per optimiser step
    max_seq_len: int = 512  # TRAIN_MAX_SEQ_LEN: longer examples lose their oldest turns
    gradient_checkpointing: bool = True  # TRAIN_GRADIENT_CHECKPOINTING: on layers TRAIN_MEMORY_MB cannot hold; 0: none
    memory_mb: int = 2048  # TRAIN_MEMORY_MB: the training process's budget, which sets how many layers are checkpointed
    bf16: str = "auto"  # TRAIN_BF16: auto (where the CPU has bf16), 1 or 0
    threads: int = 0  # TRAIN_THREADS: 0 = the container's CPU quota
    seed: int = 42  # TRAIN_SEED
    eval_fraction: float = 0.1  # TRAIN_EVAL_FRACTION: conversations held out
    eval_replies: int = 16  # TRAIN_EVAL_REPLIES: held-out prompts each version answers, to be read beside Groq's
    similarity_margin: float = 0.05  # TRAIN_SIMILARITY_MARGIN: how far below the active version's it may fall
    replay_ratio: float = 1.0  # TRAIN_REPLAY_RATIO: older examples replayed per new one in an incremental run
    full_every: int = 10  # TRAIN_FULL_EVERY: every Nth run retrains from the base model on the whole history

    @classmethod
    def from_env(cls, env: "_Env") -> "TrainSettings":
        """Parse the TRAIN_* and LORA_* flags."""
        d = cls()
        return cls(
            full_finetune=env.flag("TRAIN_FULL", d.full_finetune),
            lora_r=env.number("LORA_R", d.lora_r, int, minimum=1),
            lora_alpha=env.number("LORA_ALPHA", d.lora_alpha, int, minimum=1),
            lora_dropout=env.number("LORA_DROPOUT", d.lora_dropout, float, minimum=0, maximum=0.9),
            epochs=env.number("TRAIN_EPOCHS", d.epochs, int, minimum=1),
            learning_rate=env.number("TRAIN_LR", d.learning_rate, float, minimum=1e-8),
            warmup_ratio=env.number("TRAIN_WARMUP_RATIO", d.warmup_ratio, float, minimum=0, maximum=0.9),
            batch_tokens=env.number("TRAIN_BATCH_TOKENS", d.batch_tokens, int, minimum=16),
            grad_accum=env.number("TRAIN_GRAD_ACCUM", d.grad_accum, int, minimum=1),
            max_seq_len=env.number("TRAIN_MAX_SEQ_LEN", d.max_seq_len, int, minimum=16),
            gradient_checkpointing=env.flag("TRAIN_GRADIENT_CHECKPOINTING", d.gradient_checkpointing),
            memory_mb=env.number("TRAIN_MEMORY_MB", d.memory_mb, int, minimum=256),
            bf16=env.tristate("TRAIN_BF16"),
            threads=env.number("TRAIN_THREADS", d.threads, int, minimum=0),
            seed=env.number("TRAIN_SEED", d.seed, int, minimum=0),
            eval_fraction=env.number("TRAIN_EVAL_FRACTION", d.eval_fraction, float, minimum=0.01, maximum=0.5),
            eval_replies=env.number("TRAIN_EVAL_REPLIES", d.eval_replies, int, minimum=1),
            similarity_margin=env.number("TRAIN_SIMILARITY_MARGIN", d.similarity_margin, float, minimum=0,
                                         maximum=1),
            replay_ratio=env.number("TRAIN_REPLAY_RATIO", d.replay_ratio, float, minimum=0, maximum=100),
            full_every=env.number("TRAIN_FULL_EVERY", d.full_every, int, minimum=1),
        )


@dataclass(frozen=True)
class LocalSettings:
    """How the local model answers when USE_LOCAL_AI=1."""

    timeout: float = 30.0  # LOCAL_TIMEOUT: seconds for a whole reply before Groq answers instead
    poll_seconds: float = 30.0  # MODEL_POLL_SECONDS: how often a worker looks for a newer active version
    max_new_tokens: int = 256  # LOCAL_MAX_NEW_TOKENS
    temperature: float = 0.7  # LOCAL_TEMPERATURE: 0 picks the likeliest token every time
    top_p: float = 0.9  # LOCAL_TOP_P
    repetition_penalty: float = 1.1  # LOCAL_REPETITION_PENALTY
    quantize: bool = True  # LOCAL_QUANTIZE: int8 weights for the linear layers, ~1.9x the tokens/s of fp32
    threads: int = 0  # LOCAL_THREADS: 0 = the container's CPU quota

    @classmethod
    def from_env(cls, env: "_Env") -> "LocalSettings":
        """Parse LOCAL_TIMEOUT, MODEL_POLL_SECONDS and the LOCAL_* generation flags."""
        d = cls()
        return cls(
            timeout=env.number("LOCAL_TIMEOUT", d.timeout, float, minimum=0.1),
            poll_seconds=env.number("MODEL_POLL_SECONDS", d.poll_seconds, float, minimum=0.1),
            max_new_tokens=env.number("LOCAL_MAX_NEW_TOKENS", d.max_new_tokens, int, minimum=1),
            temperature=env.number("LOCAL_TEMPERATURE", d.temperature, float, minimum=0, maximum=5),
            top_p=env.number("LOCAL_TOP_P", d.top_p, float, minimum=0.01, maximum=1),
            repetition_penalty=env.number("LOCAL_REPETITION_PENALTY", d.repetition_penalty, float, minimum=0.5,
                                          maximum=3),
            quantize=env.flag("LOCAL_QUANTIZE", d.quantize),
            threads=env.number("LOCAL_THREADS", d.threads, int, minimum=0),
        )


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
    auto_train_cooldown: float = 600.0  # seconds after a failed run before the next trigger
    model_dir: str = "./models"
    base_model: str = "HuggingFaceTB/SmolLM2-135M-Instruct"
    admin_token: str | None = None
    max_message_chars: int = 4000
    history_turns: int = 10
    training_consent_default: bool = True
    crisis_resources: str | None = None  # CRISIS_RESOURCES: one line in every language instead of the built-in ones
    crisis_reply: str = "groq"  # CRISIS_REPLY: groq (under the crisis protocol, the fixed reply as fallback) | fixed
    crisis_reply_timeout: float = 8.0  # CRISIS_REPLY_TIMEOUT: seconds Groq has for a crisis reply before the fixed one
    safety_judge_model: str | None = "openai/gpt-oss-safeguard-20b"  # SAFETY_JUDGE_MODEL: empty turns the judge off
    safety_judge_timeout: float = 1.5  # SAFETY_JUDGE_TIMEOUT: seconds for its verdict; then the local one stands
    model_keep: int = 3
    model_store_url: str | None = None  # s3://bucket/prefix: versions published there, MODEL_DIR a cache
    aws_region: str | None = None  # AWS_REGION (boto3 itself reads only AWS_DEFAULT_REGION)
    embeddings_dir: str = "./.cache/embeddings"  # where `python -m embeddings.export` put the ONNX model
    memory_enabled: bool = True  # memory across sessions for those who opt in (POST /api/chat "remember")
    memory_max_tokens: int = 400  # earlier exchanges recalled into the system prompt, at most
    shadow_sample_rate: float = 0.0  # share of Groq's turns the active local version also answers, unseen
    train: TrainSettings = field(default_factory=TrainSettings)
    local: LocalSettings = field(default_factory=LocalSettings)
    chat_rate_limit: str = "30 per minute;500 per day"  # per client, on POST /api/chat
    admin_rate_limit: str = "10 per minute"  # per client, counting admin calls refused for a wrong token
    ratelimit_storage_uri: str = "memory://"  # per process; redis://... shares counts between replicas
    proxy_hops: int = 0  # trusted proxies in front that set X-Forwarded-For (Railway: 1)
    port: int = 8000
    web_concurrency: int = 2
    web_threads: int = 64  # each client still sending its headers holds one (bench/slow_clients.py)
    log_level: str = "INFO"
    railway_environment: str | None = None
    railway_volume_mount_path: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """Parse the flags from ``environ`` (the process environment by default)."""
        env = _Env(os.environ if environ is None else environ)
        d = cls()
        volume = env.text("RAILWAY_VOLUME_MOUNT_PATH")
        return cls(
            groq_api_key=env.text("GROQ_API_KEY"),
            groq_model=env.text("GROQ_MODEL") or d.groq_model,
            groq_base_url=env.text("GROQ_BASE_URL"),
            groq_timeout=env.number("GROQ_TIMEOUT", d.groq_timeout, float, minimum=0.1),
            groq_max_retries=env.number("GROQ_MAX_RETRIES", d.groq_max_retries, int, minimum=0),
            groq_max_tokens=env.number("GROQ_MAX_TOKENS", d.groq_max_tokens, int, minimum=1),
            database_url=_database_url(env),
            use_local_ai=env.flag("USE_LOCAL_AI", d.use_local_ai),
            enable_auto_training=env.flag("ENABLE_AUTO_TRAINING", d.enable_auto_training),
            auto_train_threshold=env.number("AUTO_TRAIN_THRESHOLD", d.auto_train_threshold, int, minimum=1),
            auto_train_cooldown=env.number("AUTO_TRAIN_COOLDOWN", d.auto_train_cooldown, float, minimum=0),
            model_dir=env.text("MODEL_DIR") or volume or d.model_dir,
            base_model=env.text("BASE_MODEL") or d.base_model,
            admin_token=env.text("ADMIN_TOKEN"),
            max_message_chars=env.number("MAX_MESSAGE_CHARS", d.max_message_chars, int, minimum=1),
            history_turns=env.number("HISTORY_TURNS", d.history_turns, int, minimum=0),
            training_consent_default=env.flag("TRAINING_CONSENT_DEFAULT", d.training_consent_default),
            crisis_resources=env.text("CRISIS_RESOURCES"),
            crisis_reply=env.choice("CRISIS_REPLY", d.crisis_reply, ("GROQ", "FIXED")).lower(),
            crisis_reply_timeout=env.number("CRISIS_REPLY_TIMEOUT", d.crisis_reply_timeout, float, minimum=0.1),
            safety_judge_model=(env.text("SAFETY_JUDGE_MODEL") if "SAFETY_JUDGE_MODEL" in env.environ
                                else d.safety_judge_model),
            safety_judge_timeout=env.number("SAFETY_JUDGE_TIMEOUT", d.safety_judge_timeout, float, minimum=0.05),
            model_keep=env.number("MODEL_KEEP", d.model_keep, int, minimum=1),
            model_store_url=_model_store_url(env),
            aws_region=env.text("AWS_REGION") or env.text("AWS_DEFAULT_REGION"),
            embeddings_dir=env.text("EMBEDDINGS_DIR") or d.embeddings_dir,
            memory_enabled=env.flag("MEMORY_ENABLED", d.memory_enabled),
            memory_max_tokens=env.number("MEMORY_MAX_TOKENS", d.memory_max_tokens, int, minimum=0),
            shadow_sample_rate=env.number("SHADOW_SAMPLE_RATE", d.shadow_sample_rate, float, minimum=0, maximum=1),
            train=TrainSettings.from_env(env),
            local=LocalSettings.from_env(env),
            chat_rate_limit=_rate_limit(env, "CHAT_RATE_LIMIT", d.chat_rate_limit),
            admin_rate_limit=_rate_limit(env, "ADMIN_RATE_LIMIT", d.admin_rate_limit),
            ratelimit_storage_uri=_storage_uri(env),
            proxy_hops=env.number("PROXY_HOPS", 1 if env.text("RAILWAY_ENVIRONMENT") else d.proxy_hops, int,
                                  minimum=0, maximum=10),
            port=env.number("PORT", d.port, int, minimum=1, maximum=65535),
            web_concurrency=env.number("WEB_CONCURRENCY", d.web_concurrency, int, minimum=1),
            web_threads=env.number("WEB_THREADS", d.web_threads, int, minimum=1),
            log_level=env.choice("LOG_LEVEL", d.log_level, ("DEBUG", "INFO", "WARNING", "ERROR")),
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


@dataclass(frozen=True)
class RunConfig:
    """How one training run is made: written into its record when it is claimed, read back by the child.

    The training child reads nothing else but the database URL from its environment, so a
    ``Settings`` built in code trains exactly as one parsed from flags; every version's
    metadata.json copies this dict.
    """

    base_model: str
    model_dir: str
    model_keep: int
    history_turns: int
    log_level: str
    train: TrainSettings
    model_store_url: str | None = None  # the bucket's credentials stay in the environment, never in the record
    aws_region: str | None = None
    embeddings_dir: str = Settings.embeddings_dir  # the sentence-embedding model: drops near-duplicate examples
    from_base: bool = False  # asked for a retrain from the base model instead of continuing the active version

    @classmethod
    def from_settings(cls, settings: Settings, from_base: bool = False) -> "RunConfig":
        """The parts of the service's settings that a training run uses."""
        return cls(base_model=settings.base_model, model_dir=str(settings.model_dir),
                   model_keep=settings.model_keep, history_turns=settings.history_turns,
                   log_level=settings.log_level, train=settings.train,
                   model_store_url=settings.model_store_url, aws_region=settings.aws_region,
                   embeddings_dir=settings.embeddings_dir, from_base=from_base)

    @classmethod
    def from_dict(cls, data: dict) -> "RunConfig":
        """Read back what ``to_dict`` wrote into a run record."""
        return cls(**{**data, "train": TrainSettings(**data["train"])})

    def to_dict(self) -> dict:
        """Plain JSON types, for the run record and the version's metadata."""
        return asdict(self)


def database_url_from_env(environ: Mapping[str, str] | None = None) -> str:
    """DATABASE_URL, or DB_URL, or the default SQLite file: all the training child reads from its environment."""
    return _database_url(_Env(os.environ if environ is None else environ))


def _database_url(env: "_Env") -> str:
    """DATABASE_URL wins over DB_URL; the SQLite file under data/ when neither is set."""
    return env.text("DATABASE_URL") or env.text("DB_URL") or DEFAULT_DATABASE_URL


def _rate_limit(env: "_Env", name: str, default: str) -> str:
    """A rate limit in Flask-Limiter's notation: "30 per minute;500 per day"."""
    from limits import parse_many

    value = env.text(name) or default
    try:
        parse_many(value)
    except ValueError:
        raise ConfigError(f"{name} must look like '30 per minute;500 per day', not {value!r}.") from None
    return value


def _storage_uri(env: "_Env") -> str:
    """RATELIMIT_STORAGE_URI, Flask-Limiter's own setting: memory:// or a redis:// URL."""
    value = env.text("RATELIMIT_STORAGE_URI") or "memory://"
    if not re.match(r"^(memory|redis|rediss|redis\+sentinel|redis\+cluster|memcached|mongodb)://", value):
        raise ConfigError(f"RATELIMIT_STORAGE_URI must be memory:// or a redis:// URL, not {value!r}.")
    return value


def _model_store_url(env: "_Env") -> str | None:
    """MODEL_STORE_URL, when set, as s3://bucket or s3://bucket/prefix."""
    url = env.text("MODEL_STORE_URL")
    if url is not None and not re.fullmatch(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s]*)?", url):
        raise ConfigError(f"MODEL_STORE_URL must look like s3://bucket/prefix, not {url!r}.")
    return url


def configure_logging(level: str) -> None:
    """One line per event on stderr, for the web workers and the trainer alike."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(level)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per Groq call adds nothing


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

    def tristate(self, name: str) -> str:
        """auto, 1 or 0 (auto when unset)."""
        value = (self.text(name) or "auto").lower()
        if value not in ("auto", "1", "0"):
            raise ConfigError(f"{name} must be auto, 1 or 0, not {value!r}.")
        return value

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        """One of a fixed set of values, case-insensitive."""
        value = (self.text(name) or default).upper()
        if value not in choices:
            raise ConfigError(f"{name} must be one of {', '.join(choices)}, not {value!r}.")
        return value
