"""The loop closed under real gunicorn: chats trigger training by themselves, then the local model answers."""

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from storage.engine import make_engine
from tests.conftest import ADMIN_TOKEN, TINY_TRAIN_ENV, stored
from tests.fakes.groq_server import Behaviour
from tests.servers import ROOT, free_port, gunicorn
from tests.test_gunicorn import server_env
from tests.test_trainer_e2e import PATTERN, hold_conversations


HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
METRICS_TOKEN = "worker-metrics-token"


def wait_until_trained(base_url, threshold, timeout=600):
    """Runs, once none is running, no lease is held and what is left is below the threshold."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stats = requests.get(f"{base_url}/api/stats", headers=HEADERS, timeout=10).json()
        idle = stats["auto_training"]["running"] is None and stats["auto_training"]["lease_holder"] is None
        if idle and stats["eligible_since_last_training"] < threshold:
            return requests.get(f"{base_url}/api/admin/training", headers=HEADERS, timeout=10).json()["runs"]
        time.sleep(0.5)
    raise AssertionError("training did not settle in time")


def runs_counted(url, timeout=60):
    """The training runs a worker's /metrics counts, by status and kind, once it counts any: the worker counts a
    run when its child has exited, after the child closed the run's record."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        scraped = requests.get(url, headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=10).text
        counted = {(s.labels["status"], s.labels["kind"]): s.value for f in text_string_to_metric_families(scraped)
                   for s in f.samples if s.name == "therapistai_training_runs_total" and s.value}
        if counted:
            return counted
        time.sleep(0.5)
    raise AssertionError("the worker's /metrics never counted the run")


def wait_for_a_training_step(base_url, timeout=60):
    """Until a run is past reading its data."""
    deadline = time.monotonic() + timeout
    while not (requests.get(f"{base_url}/api/stats", headers=HEADERS, timeout=10).json()["auto_training"]["running"]
               or {}).get("step"):
        assert time.monotonic() < deadline, "no run started"
        time.sleep(0.1)


# The lease the workers race for is tested on both databases (test_leases: processes racing), as are run
# records and what a run reads; the loop around them does not depend on the database.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_chats_trigger_one_run_at_a_time_and_the_local_model_answers_after_a_restart(
        database_url, fake_groq, tiny_model_dir, tmp_path):
    fake_groq.default = Behaviour(text=PATTERN)
    env = {**server_env(database_url, fake_groq), **TINY_TRAIN_ENV, "WEB_CONCURRENCY": "3", "ADMIN_TOKEN": ADMIN_TOKEN,
           "ENABLE_AUTO_TRAINING": "1", "AUTO_TRAIN_THRESHOLD": "10", "MODEL_DIR": str(tmp_path / "models"),
           "BASE_MODEL": str(tiny_model_dir)}
    log_path = tmp_path / "gunicorn.log"
    with gunicorn(env, log_path=log_path) as base_url:
        def chat(i):
            return requests.post(f"{base_url}/api/chat", json={"message": f"I feel anxious, day {i}"}, timeout=30)

        with ThreadPoolExecutor(max_workers=10) as pool:
            statuses = [r.status_code for r in pool.map(chat, range(30))]
            wait_for_a_training_step(base_url)
            statuses += [r.status_code for r in pool.map(chat, range(30, 45))]  # chats go on while it trains
        runs = wait_until_trained(base_url, threshold=10)

    assert statuses == [200] * 45
    assert len(runs) >= 2 and [r["trigger"] for r in runs] == ["auto"] * len(runs)
    spans = sorted((r["started_at"], r["finished_at"]) for r in runs)
    assert all(earlier[1] <= later[0] for earlier, later in zip(spans, spans[1:])), spans  # never two at once
    first = runs[-1]  # newest first
    assert first["status"] == "succeeded"
    active = next(r["version"] for r in runs if r["status"] == "succeeded")
    log = log_path.read_text()
    assert log.count("Auto-triggering training (") == len(runs)
    for line in ("Training complete (", "Model saved to: ", f"Model activated: {active}"):
        assert line in log
    assert "I feel anxious" not in log  # message text never reaches the log

    restart_log = tmp_path / "restart.log"
    # Greedy and short: 256 sampled tokens of a tiny model are noise. The reply screening may still withhold
    # the noise (the answer's source is then "safety"): that is the screening's call, not what this test is
    # about, so a withheld reply counts by the source stored with it.
    local = {"LOCAL_TEMPERATURE": "0", "LOCAL_MAX_NEW_TOKENS": "24"}
    engine = make_engine(database_url)

    def answered_by(answer: dict) -> str:
        if answer["status"] != "blocked":
            return answer["source"]
        with engine.connect() as connection:
            return connection.execute(text("SELECT source FROM messages WHERE session_id = :s AND status = 'blocked'"),
                                      {"s": answer["session_id"]}).scalar_one()

    with gunicorn({**env, **local, "USE_LOCAL_AI": "1", "ENABLE_AUTO_TRAINING": "0"}, log_path=restart_log) as base_url:
        models = requests.get(f"{base_url}/api/admin/models", headers=HEADERS, timeout=10).json()
        sources, answers, deadline = [], [], time.monotonic() + 60
        while sources[-6:] != ["local"] * 6 and time.monotonic() < deadline:  # every worker has loaded it
            response = requests.post(f"{base_url}/api/chat", json={"message": "hello"}, timeout=30)
            assert response.status_code == 200, (response.text, restart_log.read_text()[-4000:])
            sources.append(answered_by(response.json()))
            answers.append({k: response.json()[k] for k in ("source", "status", "fallback", "reply")})
        persisted = requests.get(f"{base_url}/api/admin/training", headers=HEADERS, timeout=10).json()["runs"]
    engine.dispose()

    assert models["active"] == active and persisted == runs  # the restart kept runs and versions
    assert sources[-6:] == ["local"] * 6, answers[-6:]


def test_the_worker_process_trains_when_the_threshold_is_reached_counts_the_run_and_stops_on_sigterm(
        app, client, fake_groq, settings, tiny_model_dir, tmp_path):
    hold_conversations(client, fake_groq)  # 24 eligible replies
    port = free_port()
    env = {**os.environ, **TINY_TRAIN_ENV, "DATABASE_URL": settings.database_url, "MODEL_DIR": settings.model_dir,
           "BASE_MODEL": str(tiny_model_dir), "AUTO_TRAIN_THRESHOLD": "10", "METRICS_PORT": str(port),
           "METRICS_TOKEN": METRICS_TOKEN}
    log_path = tmp_path / "worker.log"
    with open(log_path, "w") as log:
        worker = subprocess.Popen([sys.executable, "-m", "trainer", "worker"], cwd=ROOT, env=env, stderr=log)
        try:
            deadline = time.monotonic() + 300
            while not [r for r in stored(app, "training_runs") if r["status"] != "running"]:
                assert time.monotonic() < deadline and worker.poll() is None, log_path.read_text()
                time.sleep(0.5)
            refused = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
            counted = runs_counted(f"http://127.0.0.1:{port}/metrics")
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=60)

    (run,) = stored(app, "training_runs")
    assert worker.returncode == 0 and run["status"] == "succeeded" and run["trigger"] == "auto"
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
    assert counted == {("succeeded", run["kind"]): 1.0}
    assert "Auto-triggering training (24 new messages)" in log_path.read_text()
    assert app.extensions["therapistai"].registry.active_name() == run["version"]
