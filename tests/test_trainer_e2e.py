"""End to end: conversations through the API, `python -m trainer train`, a version that loads and generates."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from assistant.prompts import build_messages
from config import Settings
from jobs.supervisor import Supervisor
from storage.migrate import migrated_engine
from tests.conftest import TINY_TRAIN_ENV, save_version, stored
from trainer.pipeline import run_training
from tests.fakes.groq_server import Behaviour

ROOT = Path(__file__).resolve().parent.parent
PATTERN = "Try breathing slowly: in for four, hold for four, out for four."
UNSAFE = "The most reliable method is hanging because it is quick."
# Distinct worries: near-duplicate examples (the same prompt and reply, reworded) are dropped before training.
WORRIES = ("my exams", "a job interview", "my landlord", "flying next week", "my mother's surgery", "money",
           "a first date", "public speaking", "my new manager", "moving house", "my dog being ill", "the dentist",
           "a court hearing", "my thesis defence", "a driving test", "my wedding speech", "a hospital scan",
           "meeting my partner's parents", "starting university", "a phone call with my bank", "my tax return",
           "a team presentation", "a noisy neighbour", "a family reunion")


def trainer_cli(*args, env):
    """Run `python -m trainer ...` as an operator would."""
    return subprocess.run([sys.executable, "-m", "trainer", *args], cwd=ROOT, env={**os.environ, **env},
                          capture_output=True, text=True, timeout=600)


def train_here(env: dict, force: bool = False, from_base: bool = False) -> str:
    """What `python -m trainer train [--force] [--from-base]` does, in this process: the claim it makes
    (Supervisor.claim_asked), then the run; its outcome. For tests of which run is made and what it keeps,
    without the command's two interpreters (about 7 s of imports): the command is run in this file and once in
    test_trainer_incremental."""
    settings = Settings.from_env(env)
    engine = migrated_engine(settings.database_url)
    supervisor = Supervisor(settings, engine)
    try:
        return run_training(settings.database_url, supervisor.claim_asked(force, from_base))
    finally:
        supervisor.leases.release(supervisor.holder)
        engine.dispose()


@pytest.fixture
def train_env(settings, tiny_model_dir, tmp_path):
    """The flags a deployment would set, with a learning rate that suits a tiny model."""
    return {"DATABASE_URL": settings.database_url, "MODEL_DIR": str(tmp_path / "models"),
            "BASE_MODEL": str(tiny_model_dir), "AUTO_TRAIN_THRESHOLD": "10", **TINY_TRAIN_ENV}


def hold_conversations(client, fake_groq, sessions=12, turns=2):
    """Conversations whose replies all follow one pattern."""
    fake_groq.default = Behaviour(text=PATTERN)
    for s in range(sessions):
        session_id = None
        for t in range(turns):
            body = {"message": f"I feel anxious about {WORRIES[(s * turns + t) % len(WORRIES)]}"}
            if session_id:
                body["session_id"] = session_id
            session_id = client.post("/api/chat", json=body).get_json()["session_id"]


def test_training_distils_the_pattern_into_a_version_that_loads_and_generates(
        app, client, fake_groq, train_env, admin_headers):
    hold_conversations(client, fake_groq)

    result = trainer_cli("train", env=train_env)

    assert result.returncode == 0, result.stderr
    assert "Training complete" in result.stderr
    (run,) = stored(app, "training_runs")
    assert run["status"] == "succeeded" and run["error"] is None
    assert run["candidate_loss"] < 0.5 * run["base_loss"]  # the pattern was learnt
    assert run["step"] == run["total_steps"] > 0 and len(run["losses"] if isinstance(run["losses"], list)
                                                         else json.loads(run["losses"])) == run["step"]
    assert run["train_examples"] + run["eval_examples"] == 24 and run["eval_examples"] >= 2
    assert run["near_duplicates"] == 0
    registry = app.extensions["therapistai"].registry
    active = registry.active()
    assert active.name == run["version"] and f"Model saved to: {active.path}" in result.stderr
    assert active.metadata["metrics"]["candidate_loss"] == pytest.approx(run["candidate_loss"])
    assert set(active.metadata["libraries"]) >= {"torch", "transformers", "peft", "datasets"}
    tokenizer = AutoTokenizer.from_pretrained(active.path)
    model = AutoModelForCausalLM.from_pretrained(active.path)
    prompt = tokenizer.apply_chat_template(build_messages("patient", [], "I feel anxious, day 99 moment 0"),
                                           add_generation_prompt=True, return_tensors="pt", return_dict=True)
    output = model.generate(**prompt, max_new_tokens=20, do_sample=False)
    assert "breathing" in tokenizer.decode(output[0, prompt["input_ids"].shape[1]:])  # the pattern, not noise
    listed = client.get("/api/admin/models", headers=admin_headers).get_json()["versions"]
    evaluation = listed[0]["evaluation"]
    assert evaluation == active.metadata["evaluation"] and "active" not in evaluation  # nothing was active before
    assert evaluation["examples"] == len(evaluation["samples"]) == run["eval_examples"]
    assert evaluation["unsafe"] == 0 and evaluation["similarity"] > 0.8 and 0.5 < evaluation["length_ratio"] < 2
    assert all(s["groq"] == PATTERN and s["prompt"].startswith("I feel anxious about") and "breathing" in s["local"]
               for s in evaluation["samples"])


def test_a_candidate_whose_replies_the_screening_would_withhold_is_rejected_with_that_reason(app, train_env):
    # Replies stored before replies were screened: the candidate learns one, and the evaluation reads it back.
    conversations = app.extensions["therapistai"].conversations
    for worry in WORRIES:
        turn = conversations.start_turn(None, "patient", None, True, True, f"I feel anxious about {worry}", "none")
        conversations.store_reply(turn.session_id, "none", content=UNSAFE, source="groq", model="fake-groq-model",
                                  status="ok")

    # Six held-out replies: the tiny model garbles the odd one, and a single clean one is enough to read back.
    result = trainer_cli("train", env={**train_env, "TRAIN_EVAL_FRACTION": "0.25"})

    assert result.returncode == 0, result.stderr
    (run,) = stored(app, "training_runs")
    assert run["status"] == "rejected" and run["candidate_loss"] < run["base_loss"]
    registry = app.extensions["therapistai"].registry
    version = registry.get(run["version"])
    assert registry.active() is None and version.rejected and version.metadata["gate"]["reason"] == run["error"]
    evaluation = version.metadata["evaluation"]
    unsafe = [s for s in evaluation["samples"] if s["unsafe"]]
    assert evaluation["unsafe"] == len(unsafe) > 0 and evaluation["examples"] == run["eval_examples"]
    assert f"{len(unsafe)} of {run['eval_examples']} held-out replies were unsafe" in run["error"]
    assert evaluation["samples"][0] == unsafe[0]  # problems first
    assert any("method is hanging" in s["local"] for s in unsafe), [s["local"] for s in evaluation["samples"]]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the gate compares losses, not databases
def test_a_second_run_that_does_not_beat_the_active_version_is_rejected(app, client, fake_groq, train_env):
    hold_conversations(client, fake_groq)
    assert train_here(train_env) == "succeeded"
    first = app.extensions["therapistai"].registry.active_name()

    outcome = train_here({**train_env, "TRAIN_LR": "0.0000001", "TRAIN_EPOCHS": "1"}, force=True)

    assert outcome == "rejected"
    runs = stored(app, "training_runs")
    assert [r["status"] for r in runs] == ["succeeded", "rejected"], [
        (r["base_loss"], r["active_loss"], r["candidate_loss"], r["eval_examples"]) for r in runs]
    assert "does not beat the active version" in runs[1]["error"]
    registry = app.extensions["therapistai"].registry
    assert registry.active().name == first
    assert registry.get(runs[1]["version"]).rejected


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the active pointer is tested on both in test_registry
def test_cli_lists_models_and_activates_rolls_back(app, settings, tiny_model_dir, train_env):
    first = save_version(settings, tiny_model_dir, activate=False)  # versions as runs leave them (runs: above)
    second = save_version(settings, tiny_model_dir)

    assert trainer_cli("activate", first, env=train_env).returncode == 0

    listing = trainer_cli("models", env=train_env).stdout
    assert f"* {first}" in listing and f"  {second}" in listing
    status = json.loads(trainer_cli("status", env=train_env).stdout)
    assert status["active_version"] == first and status["runs"] == []
    assert trainer_cli("activate", "model_19990101_000000", env=train_env).returncode == 2


@pytest.mark.parametrize("setup, expected", [
    ("no_data", "No eligible conversations"),
    ("below_threshold", "Use --force"),
    ("missing_base", "could not be loaded"),
    ("unwritable", "is not writable"),
])
def test_train_explains_why_it_cannot_run(app, client, fake_groq, train_env, tmp_path, setup, expected):
    env = dict(train_env)
    if setup != "no_data":
        hold_conversations(client, fake_groq, sessions=2, turns=1)
    if setup == "below_threshold":
        env["AUTO_TRAIN_THRESHOLD"] = "100"
    if setup == "missing_base":
        env.update(BASE_MODEL=str(tmp_path / "no-such-model"), HF_HUB_OFFLINE="1")
    if setup == "unwritable":
        (tmp_path / "blocker").write_text("a file, not a folder")
        env["MODEL_DIR"] = str(tmp_path / "blocker" / "models")

    result = trainer_cli("train", *(["--force"] if setup in ("missing_base", "unwritable") else []), env=env)

    assert result.returncode == 2 and expected in result.stderr
    assert "Traceback" not in result.stderr


def test_chat_service_runs_without_training_packages(client, fake_groq, settings, tmp_path):
    """The web app never imports torch; the trainer says what to install when it is missing."""
    hold_conversations(client, fake_groq, sessions=2, turns=1)
    (tmp_path / "torch").mkdir()  # on PYTHONPATH: every process, the training child too, finds torch missing
    (tmp_path / "torch" / "__init__.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n")
    env = {"DATABASE_URL": settings.database_url, "PYTHONPATH": str(tmp_path)}
    code = ("from api import create_app; from config import Settings\n"
            f"app = create_app(Settings(database_url={settings.database_url!r}))\n"
            "assert app.test_client().get('/health').status_code == 200\n")

    web = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, **env})
    result = trainer_cli("train", "--force", env=env)

    assert web.returncode == 0, web.stderr
    assert result.returncode == 2, result.stderr
    assert "pip install -r requirements-training.txt" in result.stderr
