"""Training from the admin API: a supervised child process, progress, versions, roll back, a killed child."""

import json
import os
import signal
import threading
import time
from dataclasses import replace

import pytest

from config import Settings
from storage.leases import Leases
from storage.training_runs import TrainingRuns
from tests.conftest import TINY_TRAIN_ENV, stored
from tests.test_trainer_e2e import hold_conversations

# The admin API over a child run does not depend on the database; runs, leases and training data are tested on both
# (test_training_runs, test_leases, test_trainer_dataset, test_trainer_e2e, test_auto_training).
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
TINY_TRAIN = Settings.from_env(TINY_TRAIN_ENV).train  # the tiny model's flags, as settings for apps built in code


@pytest.fixture
def trainer_app(make_app, tiny_model_dir):
    return make_app(base_model=str(tiny_model_dir), auto_train_threshold=10, train=TINY_TRAIN)


def wait_for_run(client, headers, run_id, timeout=300, until=None):
    """The run once ``until(run)`` holds; by default once it has finished and its supervisor let the lease go."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = client.get("/api/admin/training", headers=headers).get_json()["runs"]
        run = next(r for r in runs if r["id"] == run_id)
        if until(run) if until else (run["status"] != "running" and lease_holder(client, headers) is None):
            return run
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} did not get there in {timeout}s")


def lease_holder(client, headers):
    return client.get("/api/stats", headers=headers).get_json()["auto_training"]["lease_holder"]


def test_admin_starts_a_run_sees_its_progress_and_gets_a_version(trainer_app, fake_groq, admin_headers, settings):
    client = trainer_app.test_client()
    hold_conversations(client, fake_groq)

    started = client.post("/api/admin/training", headers=admin_headers)
    again = client.post("/api/admin/training", headers=admin_headers)
    live = wait_for_run(client, admin_headers, started.get_json()["run_id"], until=lambda r: r["step"] > 0)
    run = wait_for_run(client, admin_headers, started.get_json()["run_id"])

    assert started.status_code == 202 and again.status_code == 409
    assert again.get_json()["error"]["code"] == "training_running"
    assert live["total_steps"] >= live["step"] > 0 and live["losses"]
    assert run["status"] == "succeeded" and run["trigger"] == "admin" and run["step"] == run["total_steps"]
    models = client.get("/api/admin/models", headers=admin_headers).get_json()
    assert models["active"] == run["version"]
    assert models["versions"][0]["name"] == run["version"] and models["versions"][0]["active"]
    assert models["versions"][0]["metrics"]["candidate_loss"] == pytest.approx(run["candidate_loss"])
    stats = client.get("/api/stats", headers=admin_headers).get_json()
    assert stats["active_model"] == run["version"] and stats["auto_training"]["running"] is None
    assert stats["eligible_since_last_training"] == 0 and stats["auto_training"]["lease_holder"] is None


def test_train_now_right_after_a_run_ends_waits_for_the_lease_instead_of_refusing(app, admin_headers):
    engine = app.extensions["therapistai"].database.engine
    runs, leases = TrainingRuns(engine), Leases(engine)
    ended = runs.start("auto", {}).id
    assert leases.acquire("a-supervisor-letting-go", 60)
    runs.fail_if_running(ended, "The training process exited with code 1.")  # closed; the lease not yet released
    threading.Timer(1.0, leases.release, args=("a-supervisor-letting-go",)).start()
    client = app.test_client()

    started = client.post("/api/admin/training", headers=admin_headers)

    assert started.status_code == 202
    run = wait_for_run(client, admin_headers, started.get_json()["run_id"])
    assert run["trigger"] == "admin" and run["status"] == "failed"  # no conversations: nothing to learn from


def test_killing_the_training_child_fails_the_run_frees_the_lease_and_keeps_serving(
        trainer_app, fake_groq, admin_headers, settings, make_app, tiny_model_dir):
    client = trainer_app.test_client()
    hold_conversations(client, fake_groq)
    first = wait_for_run(client, admin_headers, client.post("/api/admin/training", headers=admin_headers)
                         .get_json()["run_id"])["version"]
    slow_app = make_app(base_model=str(tiny_model_dir), train=replace(TINY_TRAIN, epochs=200))  # killed midway
    run_id = slow_app.test_client().post("/api/admin/training", headers=admin_headers).get_json()["run_id"]
    wait_for_run(client, admin_headers, run_id, until=lambda r: r["step"] > 0)

    child = slow_app.extensions["therapistai"].training.supervisor._child
    os.kill(child.pid, signal.SIGKILL)
    run = wait_for_run(client, admin_headers, run_id)

    assert run["status"] == "failed" and "killed by signal 9" in run["error"]
    assert f"Training run {run_id}:" in run["error"]  # the tail of the child's log
    assert trainer_app.extensions["therapistai"].registry.active_name() == first
    assert client.post("/api/chat", json={"message": "still there?"}).status_code == 200
    training = trainer_app.extensions["therapistai"].training
    assert training.policy.cooldown_left() > 0 and training.check() is None  # no auto-trigger during the cooldown


def test_activate_rolls_back_and_unknown_versions_are_404(trainer_app, fake_groq, admin_headers, settings,
                                                         make_app):
    client = trainer_app.test_client()
    hold_conversations(client, fake_groq)
    older = wait_for_run(client, admin_headers, client.post("/api/admin/training", headers=admin_headers)
                         .get_json()["run_id"])["version"]
    bad = [client.post("/api/admin/training", headers=admin_headers, json=body)
           for body in ({"from_base": "yes"}, {"from_base": 1}, {"continue": True}, [True])]
    newer_run = wait_for_run(client, admin_headers, client.post("/api/admin/training", headers=admin_headers,
                                                                json={"from_base": True}).get_json()["run_id"])
    newer = newer_run["version"]

    assert [r.status_code for r in bad] == [400] * 4
    assert [r.get_json()["error"]["code"] for r in bad] == ["invalid_field", "invalid_field", "unknown_field",
                                                            "invalid_json"]
    assert newer_run["kind"] == "from_base" and len(stored(trainer_app, "training_runs")) == 2  # none for bad bodies
    rolled_back = client.post(f"/api/admin/models/{older}/activate", headers=admin_headers)
    unknown = client.post("/api/admin/models/model_19990101_000000/activate", headers=admin_headers)
    traversal = client.post("/api/admin/models/..%2F..%2Fetc/activate", headers=admin_headers)
    unauthorised = client.post(f"/api/admin/models/{newer}/activate")

    assert rolled_back.status_code == 200 and rolled_back.get_json() == {"active": older}
    assert unknown.status_code == 404 and unknown.get_json()["error"]["code"] == "model_not_found"
    assert traversal.status_code == 404 and unauthorised.status_code == 401
    restarted = make_app(base_model=settings.base_model).test_client()  # runs, versions and ACTIVE persist
    models = restarted.get("/api/admin/models", headers=admin_headers).get_json()
    assert models["active"] == older and {v["name"] for v in models["versions"]} == {older, newer}
    runs = restarted.get("/api/admin/training", headers=admin_headers).get_json()["runs"]
    assert [r["version"] for r in runs] == [newer, older]



def test_a_run_started_from_settings_built_in_code_trains_with_them_whatever_the_environment(
        make_app, tiny_model_dir, fake_groq, admin_headers, monkeypatch):
    # Flags a child reading its environment would pick up: each would change the run or stop it.
    monkeypatch.setenv("LORA_R", "7")
    monkeypatch.setenv("TRAIN_EPOCHS", "not-a-number")
    monkeypatch.setenv("BASE_MODEL", "/no/such/model")
    app = make_app(base_model=str(tiny_model_dir), history_turns=1, train=replace(TINY_TRAIN, lora_r=3))
    client = app.test_client()
    hold_conversations(client, fake_groq)

    run = wait_for_run(client, admin_headers,
                       client.post("/api/admin/training", headers=admin_headers).get_json()["run_id"])

    assert run["status"] == "succeeded", run["error"]
    version = app.extensions["therapistai"].registry.get(run["version"])
    made_with = json.loads((version.path / "metadata.json").read_text())["settings"]
    assert made_with["train"]["lora_r"] == 3 and made_with["train"]["epochs"] == TINY_TRAIN.epochs
    assert made_with["base_model"] == str(tiny_model_dir) and made_with["history_turns"] == 1
    (record,) = stored(app, "training_runs")
    config = record["config"] if isinstance(record["config"], dict) else json.loads(record["config"])
    assert config == made_with
