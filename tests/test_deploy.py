"""Deployment files: the Dockerfile lints and is consistent, railway.json and the Railway IaC graph."""

import importlib.util
import json
import logging
import re
import shlex
import subprocess
import sys
from pathlib import Path

import requests

from config import Settings
from tests.servers import gunicorn

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [tuple(line.split(None, 1)) for line in joined.splitlines() if line.strip() and not line.startswith("#")]


def test_dockerfile_passes_hadolint_with_no_warnings():
    result = subprocess.run([str(Path(sys.executable).parent / "hadolint"), "Dockerfile"], cwd=ROOT,
                            capture_output=True, text=True)

    assert result.returncode == 0 and result.stdout == "", result.stdout


def test_every_copy_source_exists():
    sources = [src for op, args in dockerfile_instructions() if op == "COPY" for src in args.split()[:-1]]

    assert sources and all((ROOT / src).exists() for src in sources), sources


def test_every_installed_package_is_pinned_in_a_requirements_file():
    pinned = {line.split("#")[0].strip() for name in ("requirements.txt", "requirements-training.txt")
              for line in (ROOT / name).read_text().splitlines()}
    installs = [args for op, args in dockerfile_instructions() if op == "RUN" and "pip install" in args]
    for command in installs:
        for part in command.split("&&"):
            words = shlex.split(part.replace(";", " ").replace("fi", " "))
            if "install" not in words:
                continue
            packages = [w for w in words[words.index("install") + 1:] if not w.startswith("-")
                        and not w.startswith("http") and not w.endswith(".txt")]
            assert all(p in pinned for p in packages), (packages, pinned)
    assert "torch==2.13.0" in pinned and "--index-url https://download.pytorch.org/whl/cpu" in DOCKERFILE


def test_dockerfile_runs_gunicorn_as_a_non_root_user_with_a_healthcheck():
    ops = dict(dockerfile_instructions())

    assert ops["FROM"] == "python:3.11-slim" and ops["USER"] not in ("root", "0")
    assert "/health" in ops["HEALTHCHECK"]
    assert json.loads(ops["CMD"]) == ["gunicorn", "-c", "gunicorn.conf.py", "api:app"]


def test_railway_json_starts_a_healthy_service(database_url, fake_groq):
    config = json.loads((ROOT / "railway.json").read_text())
    assert config["$schema"].startswith("https://railway.com/")
    assert config["build"] == {"builder": "DOCKERFILE", "dockerfilePath": "Dockerfile"}
    deploy = config["deploy"]
    assert (ROOT / config["build"]["dockerfilePath"]).exists()
    assert deploy["restartPolicyType"] == "ON_FAILURE" and deploy["restartPolicyMaxRetries"] > 0
    assert deploy["healthcheckTimeout"] >= 120
    command = shlex.split(deploy["startCommand"])
    command[0] = str(Path(sys.executable).parent / command[0])  # the venv's gunicorn

    env = {"DATABASE_URL": database_url, "GROQ_API_KEY": "test-key", "GROQ_BASE_URL": fake_groq.base_url}
    with gunicorn(env, command=command) as base_url:
        assert requests.get(base_url + deploy["healthcheckPath"], timeout=5).status_code == 200


def railway_graph(layout: str) -> dict[str, list[dict]]:
    """Evaluate .railway/railway.py with railway-sdk, as the Railway CLI does; its resources by type."""
    from railway_sdk import create_railway_context

    spec = importlib.util.spec_from_file_location("railway_iac", ROOT / ".railway" / "railway.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    graph = module.main(create_railway_context(environment="production", layout=layout)).to_graph()
    by_type = {}
    for resource in graph["resources"]:
        by_type.setdefault(resource["type"], []).append(resource)
    return by_type


def literals(service: dict) -> dict[str, str]:
    return {k: v["value"] for k, v in service["variables"].items() if v["type"] == "literal"}


def test_railway_iac_one_service_wires_web_database_and_volume():
    by_type = railway_graph("one-service")
    (web,) = by_type["service"]
    (db,) = by_type["database"]
    (volume,) = by_type["volume"]

    assert db["name"] == "postgres" and "postgres" in json.dumps(db) and "bucket" not in by_type
    assert web["build"] == {"builder": "DOCKERFILE", "dockerfilePath": "Dockerfile"}
    railway_json = json.loads((ROOT / "railway.json").read_text())["deploy"]
    for key in ("startCommand", "healthcheckPath", "healthcheckTimeout", "restartPolicyType", "restartPolicyMaxRetries"):
        assert web["deploy"][key] == railway_json[key], key  # the two configurations agree
    assert web["deploy"]["healthcheckPath"] == "/health/ready"
    assert web["variables"]["DATABASE_URL"] == {"type": "reference", "resource": db["address"], "output": "DATABASE_URL"}
    assert literals(web) == {"USE_LOCAL_AI": "0", "ENABLE_AUTO_TRAINING": "1", "AUTO_TRAIN_THRESHOLD": "100"}
    (attachment,) = web["volumeAttachments"].values()
    assert attachment["volume"] == volume["address"]
    # Railway sets RAILWAY_VOLUME_MOUNT_PATH to the mount path; the app keeps its models there
    assert Settings.from_env({"RAILWAY_VOLUME_MOUNT_PATH": attachment["mountPath"]}).model_dir == \
        attachment["mountPath"] == "/app/models"


def test_railway_iac_scale_out_shares_only_postgres_and_a_bucket_between_web_replicas_and_the_trainer():
    by_type = railway_graph("scale-out")
    web, trainer = sorted(by_type["service"], key=lambda s: s["name"] == "trainer")
    (db,) = by_type["database"]
    (bucket,) = by_type["bucket"]

    assert "volume" not in by_type and not web.get("volumeAttachments") and not trainer.get("volumeAttachments")
    assert web["deploy"]["numReplicas"] >= 2 and web["deploy"]["healthcheckPath"] == "/health/ready"
    assert trainer["deploy"]["startCommand"] == "python -m trainer worker" and "healthcheckPath" not in trainer["deploy"]
    for service in (web, trainer):
        refs = {k: (v["resource"], v["output"]) for k, v in service["variables"].items() if v["type"] == "reference"}
        assert refs == {"DATABASE_URL": (db["address"], "DATABASE_URL"),
                        "AWS_ENDPOINT_URL": (bucket["address"], "ENDPOINT"),
                        "AWS_ACCESS_KEY_ID": (bucket["address"], "ACCESS_KEY_ID"),
                        "AWS_SECRET_ACCESS_KEY": (bucket["address"], "SECRET_ACCESS_KEY"),
                        "AWS_REGION": (bucket["address"], "REGION")}
        store_url = literals(service)["MODEL_STORE_URL"]
        assert store_url == "s3://${{%s.BUCKET}}/versions" % bucket["name"]
        # what the app reads once Railway has filled in the bucket's name
        resolved = {**literals(service), "MODEL_STORE_URL": store_url.replace("${{models.BUCKET}}", "models-a1b2c3")}
        assert Settings.from_env(resolved).model_store_url == "s3://models-a1b2c3/versions"
    assert literals(web)["ENABLE_AUTO_TRAINING"] == "0" and literals(trainer)["AUTO_TRAIN_THRESHOLD"] == "100"


def test_models_outside_the_railway_volume_are_warned_about(make_app, caplog, tmp_path):
    caplog.set_level(logging.WARNING)

    make_app(railway_environment="production", railway_volume_mount_path=str(tmp_path / "volume"),
             model_dir=str(tmp_path / "elsewhere"))

    assert any("outside the Railway volume" in r.getMessage() for r in caplog.records)
