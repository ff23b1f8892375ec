"""GET /openapi.json describes every route the app registers, and the live app answers as it says."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ADMIN_TOKEN, NO_LIMIT
from tests.servers import gunicorn
from tests.test_gunicorn import server_env

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
CONFIG = Path(__file__).with_name("schemathesis.toml")

UNDESCRIBED_METHODS = {"HEAD", "OPTIONS"}  # answered by Flask for every route


def test_document_describes_exactly_the_registered_routes(app, client):
    document = client.get("/openapi.json").get_json()

    described = {(path, method.upper(), operation["operationId"]) for path, item in document["paths"].items()
                 for method, operation in item.items() if method != "parameters"}
    registered = {(re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule), method, rule.endpoint)
                  for rule in app.url_map.iter_rules() if rule.endpoint != "static"
                  for method in rule.methods - UNDESCRIBED_METHODS}
    assert document["openapi"] == "3.1.0"
    assert described == registered


@pytest.mark.parametrize("limit", [1, 321])
def test_document_states_this_servers_message_limit_as_the_server_counts_it(make_app, limit):
    client = make_app(max_message_chars=limit).test_client()
    pattern = client.get("/openapi.json").get_json()["components"]["schemas"]["ChatRequest"]["properties"][
        "message"]["pattern"]

    for text in ("a" * limit, "\n " + "a" * limit + " \t", "a" * (limit + 1), " \n ", "\r\x1d\x85", "a\x00"):
        accepted = client.post("/api/chat", json={"message": text}).status_code == 200
        assert (re.search(pattern, text) is not None) == accepted, repr(text)


def test_schemathesis_finds_no_server_error_and_no_answer_outside_the_document(database_url, fake_groq, tmp_path):
    """Every check schemathesis has, positive and negative data, against real gunicorn. Starting a training
    run is left out: each call starts a trainer process (tests/test_training_admin.py covers it). The metrics
    token is the admin token, so that the one Authorization header schemathesis sends opens /metrics too."""
    env = {**server_env(database_url, fake_groq), "ADMIN_TOKEN": ADMIN_TOKEN, "ADMIN_RATE_LIMIT": NO_LIMIT,
           "METRICS_TOKEN": ADMIN_TOKEN}
    with gunicorn(env) as base_url:
        run = subprocess.run(
            [str(SCHEMATHESIS), "--config-file", str(CONFIG), "run", f"{base_url}/openapi.json",
             "--checks", "all", "--mode", "all",
             "--max-examples", "50", "--workers", "1", "--no-color",
             "--header", f"Authorization: Bearer {ADMIN_TOKEN}",
             "--exclude-by", "method == 'POST' and path == '/api/admin/training'"],
            cwd=tmp_path, capture_output=True, text=True, timeout=600,
        )
    failures = run.stdout.find("FAILURES")
    assert run.returncode == 0, run.stdout[failures:failures + 8000] + run.stdout[-1500:] + run.stderr[-2000:]
