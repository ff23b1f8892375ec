"""Model versions on disk: atomic saves, the active pointer, corruption, retention."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM

from registry.versions import Registry, RegistryError

ROOT = Path(__file__).resolve().parent.parent


def save_tiny(registry, tiny_model_dir, **metadata):
    """Save a copy of the tiny model as a new version."""
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    return registry.save(lambda folder: model.save_pretrained(folder), {"gate": {"passed": True}, **metadata})


def test_a_saved_version_is_complete_and_can_be_activated(tmp_path, tiny_model_dir):
    registry = Registry(tmp_path / "models")

    version = save_tiny(registry, tiny_model_dir, note="first")
    registry.activate(version.name)

    assert version.name.startswith("model_") and len(version.name) == len("model_20261120_221500")
    metadata = json.loads((version.path / "metadata.json").read_text())
    assert metadata["note"] == "first" and "model.safetensors" in metadata["files"]
    assert [v.name for v in registry.versions()] == [version.name]
    assert registry.active().name == version.name
    assert not list((tmp_path / "models").glob(".tmp-*"))
    AutoModelForCausalLM.from_pretrained(registry.active().path)


def test_incomplete_or_corrupt_folders_are_ignored(tmp_path, tiny_model_dir):
    registry = Registry(tmp_path)
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


def test_retention_keeps_the_newest_and_the_active(tmp_path, tiny_model_dir):
    registry = Registry(tmp_path, keep=2)
    names = [save_tiny(registry, tiny_model_dir).name for _ in range(4)]
    registry.activate(names[0])

    removed = registry.prune()

    assert sorted(removed) == [names[1]]
    assert {v.name for v in registry.versions()} == {names[0], names[2], names[3]}


def test_a_save_killed_midway_leaves_the_active_version_intact(tmp_path, tiny_model_dir):
    registry = Registry(tmp_path)
    previous = registry.activate(save_tiny(registry, tiny_model_dir).name)
    saver = subprocess.Popen([sys.executable, "-c", (
        "import sys; from transformers import LlamaConfig, LlamaForCausalLM; from registry.versions import Registry\n"
        "model = LlamaForCausalLM(LlamaConfig(vocab_size=32000, hidden_size=512, intermediate_size=1376,"
        " num_hidden_layers=8, num_attention_heads=8, num_key_value_heads=4))\n"
        "Registry(sys.argv[1]).save(lambda f: model.save_pretrained(f), {})\n"
    ), str(tmp_path)], cwd=ROOT)
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".tmp-model_*")) and saver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    os.kill(saver.pid, signal.SIGKILL)
    saver.wait()

    assert list(tmp_path.glob(".tmp-model_*")), "the save was not caught midway"
    assert [v.name for v in registry.versions()] == [previous.name]
    assert registry.active().name == previous.name
    AutoModelForCausalLM.from_pretrained(registry.active().path)
    save_tiny(registry, tiny_model_dir)  # the next save clears what the dead one left
    assert not list(tmp_path.glob(".tmp-*"))


def test_an_unwritable_model_dir_is_named_in_the_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")

    with pytest.raises(RegistryError, match="MODEL_DIR .*file/models is not writable"):
        Registry(blocker / "models").check_writable()
