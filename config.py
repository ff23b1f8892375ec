"""Every environment flag, declared once, parsed and validated once.

Each setting's variable, default, bounds and one line of help sit beside its field
(``setting(...)``, in the spirit of TRL's ``SFTConfig`` metadata). ``Settings.from_env`` reads
them from there, and ``python -m config`` writes docs/CONFIG.md from the same declarations.
Nothing else in the project reads ``os.environ``: modules receive a ``Settings``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from telemetry.logs import configure_logging

DEFAULT_DATABASE_URL = "sqlite:///data/ai_training_data.db"
REPLY_TOKENS = 256  # a local reply's length cap, served and read in held-out evaluation alike


class ConfigError(ValueError):
    """A flag has a value the service cannot run with."""


def setting(env: str, default: Any, doc: str, *, minimum: float | None = None, maximum: float | None = None,
            choices: tuple[str, ...] = (), parse: Callable[["_Env", dataclasses.Field], Any] | None = None,
            shown: str | None = None) -> Any:
    """A field read from the variable ``env``, with its default, bounds and one line of help.

    ``parse(env, field)`` reads a value that is more than its own variable (aliases, URLs, a
    default that depends on the platform); ``shown`` is the default as docs/CONFIG.md prints it
    when the value alone would mislead.
    """
    return field(default=default, metadata={"env": env, "doc": doc, "minimum": minimum, "maximum": maximum,
                                             "choices": choices, "parse": parse, "shown": shown})


def _database_url(env: "_Env", f: dataclasses.Field | None = None) -> str:
    """DATABASE_URL wins over DB_URL; the SQLite file under data/ when neither is set."""
    return env.text("DATABASE_URL") or env.text("DB_URL") or DEFAULT_DATABASE_URL


def _rate_limit(env: "_Env", f: dataclasses.Field) -> str:
    """A rate limit in Flask-Limiter's notation: "30 per minute;500 per day"."""
    from limits import parse_many

    name = f.metadata["env"]
    value = env.text(name) or f.default
    try:
        parse_many(value)
    except ValueError:
        raise ConfigError(f"{name} must look like '30 per minute;500 per day', not {value!r}.") from None
    return value


def _storage_uri(env: "_Env", f: dataclasses.Field) -> str:
    """RATELIMIT_STORAGE_URI, Flask-Limiter's own setting: memory:// or a redis:// URL."""
    value = env.text("RATELIMIT_STORAGE_URI") or f.default
    if not re.match(r"^(memory|redis|rediss|redis\+sentinel|redis\+cluster|memcached|mongodb)://", value):
        raise ConfigError(f"RATELIMIT_STORAGE_URI must be memory:// or a redis:// URL, not {value!r}.")
    return value


def _model_store_url(env: "_Env", f: dataclasses.Field) -> str | None:
    """MODEL_STORE_URL, when set, as s3://bucket or s3://bucket/prefix."""
    url = env.text("MODEL_STORE_URL")
    if url is not None and not re.fullmatch(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s]*)?", url):
        raise ConfigError(f"MODEL_STORE_URL must look like s3://bucket/prefix, not {url!r}.")
    return url


def _empty_turns_off(env: "_Env", f: dataclasses.Field) -> str | None:
    """The value, the default when the variable is absent, None (off) when it is set empty."""
    name = f.metadata["env"]
    return env.text(name) if name in env.environ else f.default


def _optional_port(env: "_Env", f: dataclasses.Field) -> int | None:
    """A TCP port, or None when the variable is unset."""
    return env.number(f.metadata["env"], None, int, f.metadata["minimum"], f.metadata["maximum"])


def _proxy_hops(env: "_Env", f: dataclasses.Field) -> int:
    """PROXY_HOPS; on Railway, its one proxy unless told otherwise."""
    default = 1 if env.text("RAILWAY_ENVIRONMENT") else f.default
    return env.number("PROXY_HOPS", default, int, f.metadata["minimum"], f.metadata["maximum"])


@dataclass(frozen=True)
class TrainSettings:
    """Fine-tuning knobs; each default fits a 2 GB, 2-core container."""

    full_finetune: bool = setting("TRAIN_FULL", False, "update every weight instead of LoRA adapters")
    lora_r: int = setting("LORA_R", 16, "adapter rank", minimum=1)
    lora_alpha: int = setting("LORA_ALPHA", 32, "adapter scale numerator", minimum=1)
    lora_dropout: float = setting("LORA_DROPOUT", 0.0, "adapter dropout; 0.05 costs a third of the throughput on CPU",
                                  minimum=0, maximum=0.9)
    epochs: int = setting("TRAIN_EPOCHS", 2, "passes over the training split", minimum=1)
    learning_rate: float = setting("TRAIN_LR", 2e-4, "peak learning rate, after warm-up, decayed linearly to zero",
                                   minimum=1e-8)
    warmup_ratio: float = setting("TRAIN_WARMUP_RATIO", 0.1, "share of steps spent warming up", minimum=0, maximum=0.9)
    batch_tokens: int = setting("TRAIN_BATCH_TOKENS", 1024, "padded tokens per micro-batch (memory grows with it)",
                                minimum=16)
    grad_accum: int = setting("TRAIN_GRAD_ACCUM", 2, "micro-batches per optimiser step", minimum=1)
    max_seq_len: int = setting("TRAIN_MAX_SEQ_LEN", 512, "longer examples lose their oldest exchanges", minimum=16)
    gradient_checkpointing: bool = setting("TRAIN_GRADIENT_CHECKPOINTING", True,
                                           "checkpoint the layers TRAIN_MEMORY_MB cannot hold; 0: none")
    memory_mb: int = setting("TRAIN_MEMORY_MB", 2048, "the training process's memory budget, which sets how many "
                             "layers are checkpointed", minimum=256)
    bf16: str = setting("TRAIN_BF16", "auto", "bf16 autocast: auto (where the CPU has bf16), 1 or 0",
                        choices=("auto", "1", "0"))
    threads: int = setting("TRAIN_THREADS", 0, "torch threads; 0: the container's CPU quota", minimum=0)
    seed: int = setting("TRAIN_SEED", 42, "seed of the split, the shuffles, the replayed examples and new adapters",
                        minimum=0)
    eval_fraction: float = setting("TRAIN_EVAL_FRACTION", 0.1, "share of conversations held out",
                                   minimum=0.01, maximum=0.5)
    eval_replies: int = setting("TRAIN_EVAL_REPLIES", 16, "held-out prompts each version answers, to be read beside "
                                "Groq's", minimum=1)
    eval_max_new_tokens: int = setting("TRAIN_EVAL_MAX_NEW_TOKENS", REPLY_TOKENS, "length cap of each held-out reply; "
                                       "serving's default, so a version is read as it would be served", minimum=1)
    similarity_margin: float = setting("TRAIN_SIMILARITY_MARGIN", 0.05, "how far the candidate's similarity to "
                                       "Groq's replies may fall below the active version's", minimum=0, maximum=1)
    replay_ratio: float = setting("TRAIN_REPLAY_RATIO", 1.0, "older examples replayed per new one in an incremental "
                                  "run", minimum=0, maximum=100)
    full_every: int = setting("TRAIN_FULL_EVERY", 10, "one run in this many retrains from the base model on the "
                              "whole history", minimum=1)


@dataclass(frozen=True)
class LocalSettings:
    """How the local model answers when USE_LOCAL_AI=1."""

    timeout: float = setting("LOCAL_TIMEOUT", 30.0, "seconds for a local reply (queueing included) before Groq "
                             "answers instead", minimum=0.1)
    poll_seconds: float = setting("MODEL_POLL_SECONDS", 30.0, "how often each worker looks for a newly activated "
                                  "version", minimum=0.1)
    max_new_tokens: int = setting("LOCAL_MAX_NEW_TOKENS", REPLY_TOKENS, "local reply length cap", minimum=1)
    temperature: float = setting("LOCAL_TEMPERATURE", 0.7, "sampling temperature; 0 picks the likeliest token every "
                                 "time", minimum=0, maximum=5)
    top_p: float = setting("LOCAL_TOP_P", 0.9, "nucleus sampling", minimum=0.01, maximum=1)
    repetition_penalty: float = setting("LOCAL_REPETITION_PENALTY", 1.1, "penalty on repeated tokens",
                                        minimum=0.5, maximum=3)
    quantize: bool = setting("LOCAL_QUANTIZE", True, "int8 weights for the linear layers (tokens/s: "
                             "docs/BENCHMARKS.md); 0 keeps fp32")
    threads: int = setting("LOCAL_THREADS", 0, "torch threads for local replies; 0: the container's CPU quota",
                           minimum=0)
    max_batch: int = setting("LOCAL_MAX_BATCH", 8, "replies a worker decodes at once (one batched step for all); "
                             "more wait", minimum=1)
    max_queue: int = setting("LOCAL_MAX_QUEUE", 16, "replies waiting for a place in the batch; past it Groq answers "
                             "(fallback local_busy)", minimum=0)


@dataclass(frozen=True)
class Settings:
    """The service's configuration; build it with ``Settings.from_env``."""

    groq_api_key: str | None = setting("GROQ_API_KEY", None, "Groq key; without it chat answers 503")
    groq_model: str = setting("GROQ_MODEL", "openai/gpt-oss-20b", "Groq model id")
    groq_base_url: str | None = setting("GROQ_BASE_URL", None, "Groq endpoint (tests point it at a fake)",
                                        shown="the SDK's (api.groq.com)")
    groq_timeout: float = setting("GROQ_TIMEOUT", 30.0, "seconds per Groq request", minimum=0.1)
    groq_max_retries: int = setting("GROQ_MAX_RETRIES", 2, "SDK retries with exponential backoff (honours "
                                    "Retry-After)", minimum=0)
    groq_max_tokens: int = setting("GROQ_MAX_TOKENS", 1024, "reply length cap", minimum=1)
    database_url: str = setting("DATABASE_URL", DEFAULT_DATABASE_URL, "or DB_URL; postgres:// and postgresql:// use "
                                "psycopg 3, with sslmode=require for non-local hosts unless given", parse=_database_url)
    use_local_ai: bool = setting("USE_LOCAL_AI", False, "answer with the active local version, Groq as the fallback")
    enable_auto_training: bool = setting("ENABLE_AUTO_TRAINING", False, "web workers start training when "
                                         "AUTO_TRAIN_THRESHOLD is reached")
    auto_train_threshold: int = setting("AUTO_TRAIN_THRESHOLD", 100, "eligible replies since the last completed run "
                                        "that start training", minimum=1)
    auto_train_cooldown: float = setting("AUTO_TRAIN_COOLDOWN", 600.0, "seconds after a failed run before the next "
                                         "automatic one", minimum=0)
    model_dir: str = setting("MODEL_DIR", "./models", "where model versions live; with MODEL_STORE_URL, their local "
                             "cache", parse=lambda env, f: env.text("MODEL_DIR") or env.text("RAILWAY_VOLUME_MOUNT_PATH")
                             or f.default, shown="./models, or RAILWAY_VOLUME_MOUNT_PATH when set")
    base_model: str = setting("BASE_MODEL", "HuggingFaceTB/SmolLM2-135M-Instruct", "the model to fine-tune")
    admin_token: str | None = setting("ADMIN_TOKEN", None, "bearer token of the admin endpoints; unset: they answer "
                                      "403")
    max_message_chars: int = setting("MAX_MESSAGE_CHARS", 4000, "longest accepted message", minimum=1)
    history_turns: int = setting("HISTORY_TURNS", 10, "earlier exchanges sent to the model", minimum=0)
    training_consent_default: bool = setting("TRAINING_CONSENT_DEFAULT", True, "consent of a session that does not "
                                             "say")
    crisis_resources: str | None = setting("CRISIS_RESOURCES", None, "one crisis line of your own, in every language, "
                                           "instead of the built-in ones", shown="US lines (English and Spanish)")
    crisis_reply: str = setting("CRISIS_REPLY", "groq", "groq: a patient at high risk gets Groq's reply under the "
                                "crisis protocol, the fixed reply as fallback; fixed: always the fixed reply",
                                choices=("groq", "fixed"))
    crisis_reply_timeout: float = setting("CRISIS_REPLY_TIMEOUT", 8.0, "seconds Groq has for a crisis reply before "
                                          "the fixed one answers", minimum=0.1)
    safety_judge_model: str | None = setting("SAFETY_JUDGE_MODEL", "openai/gpt-oss-safeguard-20b", "the safety model "
                                             "on Groq asked about medium- and high-risk messages; empty turns it off",
                                             parse=_empty_turns_off)
    safety_judge_timeout: float = setting("SAFETY_JUDGE_TIMEOUT", 1.5, "seconds the judge has; then the local "
                                          "screen's verdict stands", minimum=0.05)
    model_keep: int = setting("MODEL_KEEP", 3, "versions kept besides the active one", minimum=1)
    model_store_url: str | None = setting("MODEL_STORE_URL", None, "s3://bucket/prefix: versions are published to "
                                          "S3-compatible storage and fetched from it, MODEL_DIR a cache",
                                          parse=_model_store_url)
    aws_region: str | None = setting("AWS_REGION", None, "or AWS_DEFAULT_REGION: the bucket's region (boto3 itself "
                                     "reads only AWS_DEFAULT_REGION)",
                                     parse=lambda env, f: env.text("AWS_REGION") or env.text("AWS_DEFAULT_REGION"))
    embeddings_dir: str = setting("EMBEDDINGS_DIR", "./.cache/embeddings", "where `python -m embeddings.export` wrote "
                                  "the sentence-embedding model: screening, memory, near-duplicates")
    memory_enabled: bool = setting("MEMORY_ENABLED", True, "memory across sessions for those who ask (remember); 0: "
                                   "none at all, no ids, no embedding, no recall (forgetting still works)")
    memory_max_tokens: int = setting("MEMORY_MAX_TOKENS", 400, "earlier exchanges recalled into the system prompt, "
                                     "at most (4 characters a token)", minimum=0)
    shadow_sample_rate: float = setting("SHADOW_SAMPLE_RATE", 0.0, "share of Groq's turns the active local version "
                                        "also answers, unseen, for admins to judge", minimum=0, maximum=1)
    train: TrainSettings = field(default_factory=TrainSettings)
    local: LocalSettings = field(default_factory=LocalSettings)
    chat_rate_limit: str = setting("CHAT_RATE_LIMIT", "30 per minute;500 per day", "chats per client on POST "
                                   "/api/chat (Flask-Limiter's notation); over it, 429 rate_limited",
                                   parse=_rate_limit)
    admin_rate_limit: str = setting("ADMIN_RATE_LIMIT", "10 per minute", "admin calls refused for a wrong or missing "
                                    "token, per client, over all admin endpoints", parse=_rate_limit)
    ratelimit_storage_uri: str = setting("RATELIMIT_STORAGE_URI", "memory://", "where rate limits count: memory:// "
                                         "per worker, redis://... once for every worker and replica",
                                         parse=_storage_uri)
    proxy_hops: int = setting("PROXY_HOPS", 0, "trusted proxies in front that append to X-Forwarded-For; with 0 the "
                              "header is ignored", minimum=0, maximum=10, parse=_proxy_hops,
                              shown="1 on Railway, else 0")
    port: int = setting("PORT", 8000, "gunicorn binds 0.0.0.0:$PORT", minimum=1, maximum=65535)
    web_concurrency: int = setting("WEB_CONCURRENCY", 2, "gunicorn workers", minimum=1)
    web_threads: int = setting("WEB_THREADS", 64, "threads per gunicorn worker; a client still sending its request "
                               "holds one (bench/slow_clients.py)", minimum=1)
    log_level: str = setting("LOG_LEVEL", "INFO", "log level", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    log_format: str = setting("LOG_FORMAT", "text", "log lines as text, or one JSON object per line (time, level, "
                              "logger, message, request_id; route, status, duration on access lines)",
                              choices=("text", "json"))
    metrics_token: str | None = setting("METRICS_TOKEN", None, "bearer token of GET /metrics (and of the training "
                                        "worker's METRICS_PORT); unset: metrics are off and answer 403")
    metrics_port: int | None = setting("METRICS_PORT", None, "`python -m trainer worker` serves /metrics on this "
                                       "port; unset: it serves none", minimum=1, maximum=65535, parse=_optional_port)
    prometheus_multiproc_dir: str | None = setting("PROMETHEUS_MULTIPROC_DIR", None, "where gunicorn's workers keep "
                                                   "their metrics, emptied at start-up; unset: a new temporary "
                                                   "folder, removed at shutdown")
    railway_environment: str | None = setting("RAILWAY_ENVIRONMENT", None, "set by Railway", shown="set by Railway")
    railway_volume_mount_path: str | None = setting("RAILWAY_VOLUME_MOUNT_PATH", None, "set by Railway with a "
                                                    "volume: the default MODEL_DIR", shown="set by Railway")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """Parse the flags from ``environ`` (the process environment by default)."""
        return _from_env(cls, _Env(os.environ if environ is None else environ))

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


def _from_env(cls: type, env: "_Env"):
    """A settings class from its fields' declarations; nested settings classes in turn."""
    kinds = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        kind, meta = kinds[f.name], f.metadata
        if dataclasses.is_dataclass(kind):
            values[f.name] = _from_env(kind, env)
        elif meta["parse"]:
            values[f.name] = meta["parse"](env, f)
        elif kind is bool:
            values[f.name] = env.flag(meta["env"], f.default)
        elif kind in (int, float):
            values[f.name] = env.number(meta["env"], f.default, kind, meta["minimum"], meta["maximum"])
        elif meta["choices"]:
            values[f.name] = env.choice(meta["env"], f.default, meta["choices"])
        else:
            values[f.name] = env.text(meta["env"]) or f.default
    return cls(**values)


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
    log_format: str = "text"  # the service's LOG_FORMAT, so that the child's lines read like its supervisor's
    model_store_url: str | None = None  # the bucket's credentials stay in the environment, never in the record
    aws_region: str | None = None
    embeddings_dir: str = Settings.embeddings_dir  # the sentence-embedding model: drops near-duplicate examples
    from_base: bool = False  # asked for a retrain from the base model instead of continuing the active version

    @classmethod
    def from_settings(cls, settings: Settings, from_base: bool = False) -> "RunConfig":
        """The parts of the service's settings that a training run uses."""
        return cls(base_model=settings.base_model, model_dir=str(settings.model_dir),
                   model_keep=settings.model_keep, history_turns=settings.history_turns,
                   log_level=settings.log_level, log_format=settings.log_format, train=settings.train,
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


def cli_settings() -> Settings:
    """The flags of a command-line entry point, with logging configured from them; a bad flag ends the process
    with exit code 2 and the sentence naming it."""
    try:
        settings = Settings.from_env()
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings.log_level, settings.log_format)
    return settings


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
        """One of a fixed set of values, case-insensitive, spelt as declared."""
        value = self.text(name) or default
        found = next((c for c in choices if c.lower() == value.lower()), None)
        if found is None:
            raise ConfigError(f"{name} must be one of {', '.join(choices)}, not {value!r}.")
        return found


def reference() -> str:
    """docs/CONFIG.md: every setting with its default, bounds and help, from the declarations above."""
    lines = ["# Configuration", "",
             "Generated from `config.py` by `python -m config > docs/CONFIG.md`; a test fails when it is stale.",
             "Every flag is read and validated once at start-up; a bad value stops the service with a sentence",
             "naming the flag. Booleans take 1/0, true/false, yes/no, on/off. boto3 reads the bucket's",
             "`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` itself; they are never stored."]
    for title, cls in (("Service", Settings), ("Local answers (USE_LOCAL_AI=1)", LocalSettings),
                       ("Training", TrainSettings)):
        lines += ["", f"## {title}", "", "| flag | default | values | meaning |", "| --- | --- | --- | --- |"]
        for f in dataclasses.fields(cls):
            if "env" in f.metadata:
                meta = f.metadata
                lines.append(f"| `{meta['env']}` | {meta['shown'] or _shown(f.default)} | {_values(meta)} | "
                             f"{meta['doc']} |")
    return "\n".join(lines) + "\n"


def _shown(default: Any) -> str:
    """A default as the docs print it."""
    if default is None:
        return "unset"
    if isinstance(default, bool):
        return "`1`" if default else "`0`"
    return f"`{default}`"


def _values(meta: Mapping[str, Any]) -> str:
    """The bounds or choices of a setting, for the docs."""
    if meta["choices"]:
        return ", ".join(f"`{c}`" for c in meta["choices"])
    low, high = meta["minimum"], meta["maximum"]
    if low is not None and high is not None:
        return f"{low} to {high}"
    return f"≥ {low}" if low is not None else ""


if __name__ == "__main__":
    sys.stdout.write(reference())
