"""Settings.from_env: defaults, aliases, and bad values that stop start-up."""

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

import config
from config import DEFAULT_DATABASE_URL, ConfigError, Settings

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_match_the_design():
    settings = Settings.from_env({})

    assert settings.database_url == DEFAULT_DATABASE_URL
    assert (settings.groq_model, settings.groq_timeout, settings.groq_api_key) == ("openai/gpt-oss-20b", 30.0, None)
    assert (settings.use_local_ai, settings.enable_auto_training, settings.auto_train_threshold) == (False, False, 100)
    assert (settings.max_message_chars, settings.history_turns, settings.training_consent_default) == (4000, 10, True)
    assert (settings.port, settings.web_concurrency, settings.model_dir) == (8000, 2, "./models")
    assert settings.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_auto_training_and_local_model_flags():
    settings = Settings.from_env({"AUTO_TRAIN_COOLDOWN": "30", "MODEL_POLL_SECONDS": "2.5", "LOCAL_TIMEOUT": "9",
                                  "LOCAL_TEMPERATURE": "0", "LOCAL_MAX_NEW_TOKENS": "64", "LOCAL_QUANTIZE": "0"})

    assert Settings.from_env({}).auto_train_cooldown == 600 and settings.auto_train_cooldown == 30
    local = settings.local
    assert (local.poll_seconds, local.timeout, local.temperature, local.max_new_tokens) == (2.5, 9, 0, 64)
    assert local.quantize is False and Settings.from_env({}).local.quantize is True


def test_database_url_wins_over_db_url():
    assert Settings.from_env({"DB_URL": "sqlite:///b.db"}).database_url == "sqlite:///b.db"
    assert Settings.from_env({"DB_URL": "sqlite:///b.db", "DATABASE_URL": "sqlite:///a.db"}).database_url == "sqlite:///a.db"


def test_model_dir_defaults_to_the_railway_volume():
    assert Settings.from_env({"RAILWAY_VOLUME_MOUNT_PATH": "/data"}).model_dir == "/data"
    assert Settings.from_env({"RAILWAY_VOLUME_MOUNT_PATH": "/data", "MODEL_DIR": "/m"}).model_dir == "/m"


@pytest.mark.parametrize("value, expected", [("1", True), ("true", True), ("YES", True), ("on", True),
                                             ("0", False), ("false", False), ("No", False), ("", False)])
def test_boolean_flags_accept_common_spellings(value, expected):
    assert Settings.from_env({"USE_LOCAL_AI": value}).use_local_ai is expected


@pytest.mark.parametrize("name, value", [
    ("PORT", "abc"), ("PORT", "70000"), ("GROQ_TIMEOUT", "soon"), ("GROQ_TIMEOUT", "0"),
    ("AUTO_TRAIN_THRESHOLD", "0"), ("AUTO_TRAIN_THRESHOLD", "1.5"), ("MAX_MESSAGE_CHARS", "-1"),
    ("HISTORY_TURNS", "ten"), ("WEB_CONCURRENCY", "0"), ("USE_LOCAL_AI", "maybe"),
    ("ENABLE_AUTO_TRAINING", "2"), ("TRAINING_CONSENT_DEFAULT", "sure"), ("LOG_LEVEL", "LOUD"),
    ("AUTO_TRAIN_COOLDOWN", "-5"), ("MODEL_POLL_SECONDS", "0"), ("LOCAL_TIMEOUT", "never"),
    ("LOCAL_TEMPERATURE", "-1"), ("LOCAL_TOP_P", "2"), ("LOCAL_MAX_NEW_TOKENS", "0"), ("LOCAL_QUANTIZE", "int4"),
    ("TRAIN_BF16", "maybe"), ("MODEL_STORE_URL", "https://bucket/x"), ("MODEL_STORE_URL", "s3://"),
    ("CHAT_RATE_LIMIT", "lots"), ("ADMIN_RATE_LIMIT", "10 per fortnight"), ("RATELIMIT_STORAGE_URI", "postgres://x"),
    ("PROXY_HOPS", "-1"),
])
def test_bad_values_name_the_flag(name, value):
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})


def test_railway_trusts_its_one_proxy_and_elsewhere_none_unless_told():
    assert Settings.from_env({}).proxy_hops == 0
    assert Settings.from_env({"RAILWAY_ENVIRONMENT": "production"}).proxy_hops == 1
    assert Settings.from_env({"RAILWAY_ENVIRONMENT": "production", "PROXY_HOPS": "2"}).proxy_hops == 2


def test_docs_config_is_generated_from_the_declarations():
    documented = (ROOT / "docs" / "CONFIG.md").read_text(encoding="utf-8")
    assert documented == config.reference(), "docs/CONFIG.md is stale: run `python -m config > docs/CONFIG.md`"


def test_every_setting_is_declared_with_its_variable_and_help():
    for cls in (Settings, config.LocalSettings, config.TrainSettings):
        for f in dataclasses.fields(cls):
            if not dataclasses.is_dataclass(f.default_factory):
                assert f.metadata["env"] and f.metadata["doc"], f.name


@pytest.mark.parametrize("command", [["jobs", "status"], ["trainer", "models"], ["embeddings", "backfill"],
                                     ["assistant.safety"]])
def test_every_command_line_stops_on_a_bad_flag_with_a_sentence_naming_it(command):
    done = subprocess.run([sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HISTORY_TURNS": "ten"})

    assert done.returncode == 2
    assert done.stderr.strip() == "error: HISTORY_TURNS must be a whole number, not 'ten'."
