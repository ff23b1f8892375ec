"""GET /openapi.json describes every route the app registers, and the live app answers as it says."""

from __future__ import annotations

import re

import subprocess
import sys
from pathlib import Path

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


def test_document_states_this_servers_message_limit(make_app):
    document = make_app(max_message_chars=321).test_client().get("/openapi.json").get_json()

    assert document["components"]["schemas"]["ChatRequest"]["properties"]["message"]["maxLength"] == 321


def test_schemathesis_finds_no_server_error_and_no_answer_outside_the_document(database_url, fake_groq, tmp_path):
    """Every check schemathesis has, positive and negative data, against real gunicorn. Starting a training
    run is left out: each call starts a trainer process (tests/test_training_admin.py covers it)."""
    env = {**server_env(database_url, fake_groq), "ADMIN_TOKEN": ADMIN_TOKEN, "ADMIN_RATE_LIMIT": NO_LIMIT}
    with gunicorn(env) as base_url:
        run = subprocess.run(
            [str(SCHEMATHESIS), "--config-file", str(CONFIG), "run", f"{base_url}/openapi.json",
             "--checks", "all", "--mode", "all",
             "--max-examples", "50", "--workers", "1", "--no-color",
             "--header", f"Authorization: Bearer {ADMIN_TOKEN}",
             "--exclude-by", "method == 'POST' and path == '/api/admin/training'"],
            cwd=tmp_path, capture_output=True, text=True, timeout=600,
        )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
