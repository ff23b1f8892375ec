"""Model versions in MODEL_DIR: atomic saves, checksums, the active pointer in the database, retention."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from transformers import AutoModelForCausalLM

from registry.registry import Registry
from registry.versions import RegistryError
from storage.migrate import migrated_engine

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def engine(database_url):
    engine = migrated_engine(database_url)
    yield engine
    engine.dispose()


def save_tiny(registry, tiny_model_dir, **metadata):
    """Save a copy of the tiny model as a new version."""
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    return registry.save(lambda folder: model.save_pretrained(folder), {"gate": {"passed": True}, **metadata})


def test_a_saved_version_is_complete_and_its_activation_is_recorded_in_the_database(
        tmp_path, engine, tiny_model_dir):
    registry = Registry(tmp_path / "models", engine)

    version = save_tiny(registry, tiny_model_dir, note="first")
    registry.activate(version.name)

    assert version.name.startswith("model_") and len(version.name) == len("model_20261120_221500")
    metadata = json.loads((version.path / "metadata.json").read_text())
    weights = version.path / "model.safetensors"
    assert metadata["note"] == "first" and metadata["files"]["model.safetensors"] == weights.stat().st_size
    assert metadata["sha256"]["model.safetensors"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert [v.name for v in registry.versions()] == [version.name]
    assert registry.active().name == version.name
    assert not (tmp_path / "models" / "ACTIVE").exists()
    with engine.connect() as connection:
        assert connection.execute(text("SELECT version FROM active_version")).scalar_one() == version.name
    assert not list((tmp_path / "models").glob(".tmp-*"))
    AutoModelForCausalLM.from_pretrained(registry.local(registry.active()))


def test_a_damaged_version_is_refused_before_it_is_served(tmp_path, engine, tiny_model_dir):
    registry = Registry(tmp_path, engine)
    version = save_tiny(registry, tiny_model_dir)
    weights = version.path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte, same size
    weights.write_bytes(bytes(data))

    with pytest.raises(RegistryError, match="failed verification: model.safetensors does not match its SHA-256"):
        registry.local(version)


def test_the_active_file_of_an_older_volume_is_taken_over_once(tmp_path, engine, tiny_model_dir):
    registry = Registry(tmp_path, engine)
    older, newer = save_tiny(registry, tiny_model_dir).name, save_tiny(registry, tiny_model_dir).name
    (tmp_path / "ACTIVE").write_text(older)

    assert registry.active_name() == older
    registry.activate(newer)
    assert Registry(tmp_path, engine).active_name() == newer  # the database, not the file, decides now


def test_incomplete_or_corrupt_folders_are_ignored(tmp_path, engine, tiny_model_dir):
    registry = Registry(tmp_path, engine)
    good = save_tiny(registry, tiny_model_dir)
    (tmp_path / "model_20200101_000000").mkdir()  # no metadata
    truncated = tmp_path / "model_20200101_000001"
    truncated.mkdir()
    (truncated / "model.safetensors").write_bytes(b"half")
    (truncated / "metadata.json").write_text(json.dumps({"files": {"model.safetensors": 999}}))
    garbled = tmp_path / "model_20200101_000002"
    garbled.mkdir()
    (garbled / "metadata.json").write_text("{not json")
    (tmp_path / "ACTIVE").write_text("model_20200101_000001")

    assert [v.name for v in registry.versions()] == [good.name]
    assert registry.active() is None
    with pytest.raises(RegistryError):
        registry.activate("model_20200101_000001")


def test_retention_keeps_the_newest_and_the_active(tmp_path, engine, tiny_model_dir):
    registry = Registry(tmp_path, engine, keep=2)
    names = [save_tiny(registry, tiny_model_dir).name for _ in range(4)]
    registry.activate(names[0])

    removed = registry.prune()

    assert sorted(removed) == [names[1]]
    assert {v.name for v in registry.versions()} == {names[0], names[2], names[3]}


def test_a_save_killed_midway_leaves_the_active_version_intact(tmp_path, engine, database_url, tiny_model_dir):
    registry = Registry(tmp_path, engine)
    previous = registry.activate(save_tiny(registry, tiny_model_dir).name)
    saver = subprocess.Popen([sys.executable, "-c", (
        "import sys; from transformers import LlamaConfig, LlamaForCausalLM\n"
        "from registry.registry import Registry; from storage.engine import make_engine\n"
        "model = LlamaForCausalLM(LlamaConfig(vocab_size=32000, hidden_size=512, intermediate_size=1376,"
        " num_hidden_layers=8, num_attention_heads=8, num_key_value_heads=4))\n"
        "Registry(sys.argv[1], make_engine(sys.argv[2])).save(lambda f: model.save_pretrained(f), {})\n"
    ), str(tmp_path), database_url], cwd=ROOT)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".tmp-model_*")) and saver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    os.kill(saver.pid, signal.SIGKILL)
    saver.wait()

    assert list(tmp_path.glob(".tmp-model_*")), "the save was not caught midway"
    assert [v.name for v in registry.versions()] == [previous.name]
    assert registry.active().name == previous.name
    AutoModelForCausalLM.from_pretrained(registry.local(registry.active()))
    save_tiny(registry, tiny_model_dir)  # the next save clears what the dead one left
    assert not list(tmp_path.glob(".tmp-*"))


def test_an_unwritable_model_dir_is_named_in_the_error(tmp_path, engine):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")

    with pytest.raises(RegistryError, match="MODEL_DIR .*file/models is not writable"):
        Registry(blocker / "models", engine).check_writable()
