"""Incremental runs: a run continues the active version's adapter on what is new; adapter versions serve and roll back."""

from pathlib import Path

import pytest

from storage.training_data import TrainingData
from tests.conftest import stored
from tests.fakes.groq_server import Behaviour
from tests.test_local_ai import loaded_version, local_app, wait_for
from tests.test_trainer_e2e import PATTERN, WORRIES, hold_conversations, train_env, train_here, trainer_cli  # noqa: F401 (fixture)

ADAPTER_FILES = {"adapter_model.safetensors", "adapter_config.json"}
# Version chains and their files do not depend on the database; what a run reads is tested on both
# (test_trainer_dataset, test_trainer_e2e). Runs are trained in this process (train_here), but for one
# from-base run through the command.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
# A run that ended with a version, promoted or not: the gate weighs held-out losses of a few random
# conversations, and is not what these tests are about (test_trainer_e2e, test_trainer_judge).
MADE_A_VERSION = ("succeeded", "rejected")


def more_conversations(client, fake_groq, count):
    """New single-turn conversations, worded unlike the first ones, each with one eligible reply."""
    fake_groq.default = Behaviour(text=PATTERN)
    for worry in WORRIES[:count]:
        assert client.post("/api/chat", json={"message": f"How should I prepare for {worry}?"}).status_code == 200


def versions_of_runs(app):
    registry = app.extensions["therapistai"].registry
    return [(run, registry.get(run["version"])) for run in stored(app, "training_runs")]


def test_a_second_run_continues_the_first_on_what_is_new_and_a_from_base_run_has_no_parent(
        app, client, fake_groq, train_env, admin_headers):
    hold_conversations(client, fake_groq)
    assert train_here(train_env) in MADE_A_VERSION
    (first_run, first), = versions_of_runs(app)
    more_conversations(client, fake_groq, 12)
    new_replies = TrainingData(app.extensions["therapistai"].database.engine).count_eligible_replies(
        first.metadata["watermark"])

    second_outcome = train_here(train_env)
    from_base_result = trainer_cli("train", "--force", "--from-base", env=train_env)  # the command, end to end

    assert second_outcome in MADE_A_VERSION
    assert from_base_result.returncode == 0, from_base_result.stderr  # a version whatever the gate's verdict
    (_, first), (second_run, second), (third_run, third) = versions_of_runs(app)
    assert first.metadata["parent"] is None and first.metadata["kind"] == first_run["kind"] == "from_base"
    assert second.metadata["parent"] == first.name and second_run["kind"] == "incremental"
    trained_on = second.metadata["trained_on"]
    assert second_run["near_duplicates"] == 0 and new_replies == 12
    assert trained_on["new"] + trained_on["held_out"] == new_replies and trained_on["new"] > 0
    assert trained_on["replay"] == min(trained_on["new"], first.metadata["trained_on"]["new"])  # ratio 1.0
    assert second_run["train_examples"] == trained_on["new"] + trained_on["replay"]
    assert second.metadata["runs_since_base"] == 1 and second.metadata["watermark"] > first.metadata["watermark"]
    assert third.metadata["parent"] is None and third_run["kind"] == "from_base"
    assert third.metadata["kind_reason"] == "a retrain from the base model was asked for"
    assert third.metadata["trained_on"] == {"new": 0, "replay": third_run["train_examples"], "held_out": 0}
    for version in (first, second, third):
        files = {p.name for p in Path(version.path).iterdir()}
        assert ADAPTER_FILES <= files and not any(name.startswith("model") for name in files)  # no full weights
        assert version.metadata["weights"] == "adapter"
    listed = {v["name"]: v for v in client.get("/api/admin/models", headers=admin_headers).get_json()["versions"]}
    assert listed[second.name]["parent"] == first.name and listed[second.name]["trained_on"] == trained_on
    runs = client.get("/api/admin/training", headers=admin_headers).get_json()["runs"]
    assert [r["kind"] for r in runs] == ["from_base", "incremental", "from_base"]


def test_with_train_full_every_1_every_run_retrains_from_the_base(app, client, fake_groq, train_env):
    hold_conversations(client, fake_groq)
    env = {**train_env, "TRAIN_FULL_EVERY": "1"}
    assert train_here(env) in MADE_A_VERSION
    more_conversations(client, fake_groq, 12)

    outcome = train_here(env)

    assert outcome in MADE_A_VERSION
    (_, first), (run, second) = versions_of_runs(app)
    assert run["kind"] == "from_base" and second.metadata["parent"] is None
    assert "TRAIN_FULL_EVERY" in second.metadata["kind_reason"]
    assert second.metadata["trained_on"]["replay"] > 0  # the whole history, not only what is new


def test_a_chain_of_adapter_versions_serves_and_rolls_back(
        app, client, fake_groq, train_env, make_app, settings, admin_headers):
    hold_conversations(client, fake_groq)
    assert train_here(train_env) in MADE_A_VERSION
    more_conversations(client, fake_groq, 12)
    assert train_here(train_env) in MADE_A_VERSION
    (_, first), (_, second) = versions_of_runs(app)
    assert second.metadata["parent"] == first.name
    assert client.post(f"/api/admin/models/{second.name}/activate", headers=admin_headers).status_code == 200
    served = local_app(make_app, settings)
    chat = served.test_client()
    wait_for(lambda: loaded_version(served) == second.name, timeout=60)

    newest = chat.post("/api/chat", json={"message": "I feel anxious about my exams"}).get_json()
    rolled_back = chat.post(f"/api/admin/models/{first.name}/activate", headers=admin_headers)
    wait_for(lambda: loaded_version(served) == first.name, timeout=60)
    older = chat.post("/api/chat", json={"message": "I feel anxious about my exams"}).get_json()

    assert newest["source"] == "local" and newest["model"] == second.name and "breathing" in newest["reply"]
    assert rolled_back.status_code == 200
    assert older["source"] == "local" and older["model"] == first.name and "breathing" in older["reply"]


def test_train_full_stores_full_weights_and_the_next_run_retrains_from_the_base(app, client, fake_groq, train_env):
    hold_conversations(client, fake_groq)
    assert train_here({**train_env, "TRAIN_FULL": "1"}) in MADE_A_VERSION
    more_conversations(client, fake_groq, 12)

    outcome = train_here(train_env)

    assert outcome in MADE_A_VERSION
    (_, full), (run, after) = versions_of_runs(app)
    files = {p.name for p in Path(full.path).iterdir()}
    assert "model.safetensors" in files and not files & ADAPTER_FILES and full.metadata["weights"] == "full"
    assert run["kind"] == "from_base" and after.metadata["parent"] is None  # a full version has no adapter to continue
    assert ADAPTER_FILES <= {p.name for p in Path(after.path).iterdir()}
