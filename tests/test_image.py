"""What the image holds: its files, assembled from the Dockerfile's COPY lines and .dockerignore, run the
service under gunicorn and a training run, with nothing from the repository beside them."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from docker.utils.build import exclude_paths

from tests.conftest import TINY_TRAIN_ENV
from tests.fakes.groq_server import Behaviour
from tests.servers import ROOT, gunicorn
from tests.test_deploy import dockerfile_instructions
from tests.test_gunicorn import server_env
from tests.test_trainer_e2e import PATTERN


def image_files(into: Path) -> Path:
    """Copy what `docker build` would put in WORKDIR into ``into``; returns that folder."""
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    context = sorted(p for p in exclude_paths(str(ROOT), patterns) if (ROOT / p).is_file())
    for op, args in dockerfile_instructions():
        if op != "COPY":
            continue
        *sources, target = args.split()
        for source in sources:
            base = "" if source == "." else source.rstrip("/")
            for path in context:
                if base and path != base and not path.startswith(base + "/"):
                    continue
                relative = Path(path).name if path == base else Path(path).relative_to(base) if base else Path(path)
                destination = into / target / relative
                destination.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / path, destination)
    return into


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    return image_files(tmp_path_factory.mktemp("image") / "app")


def image_env(env: dict) -> dict:
    """The environment of a process in the image: no path back into the repository."""
    return {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, **env,
            "EMBEDDINGS_DIR": str(ROOT / ".cache" / "embeddings")}  # made by a RUN step of the image, not copied


def test_the_image_holds_the_application_and_nothing_it_must_not(image):
    files = {str(p.relative_to(image)) for p in image.rglob("*") if p.is_file()}
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    modules = {f for f in tracked if f.endswith(".py") and f.split("/")[0] not in ("tests", "bench", ".railway")}

    assert modules <= files, sorted(modules - files)  # every module of the service, new ones included
    assert {"gunicorn.conf.py", "alembic.ini", "requirements.txt", "data/safety/messages.jsonl"} <= files
    assert not [f for f in files if f.split("/")[0] in (".venv", ".git", "tests", ".cache", "bench")
                or f.endswith((".db", ".safetensors", ".pyc")) or f.startswith("models/")]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the image's files, not the database
def test_gunicorn_and_a_training_run_work_from_the_image_alone(image, database_url, fake_groq, tiny_model_dir,
                                                               tmp_path):
    fake_groq.default = Behaviour(text=PATTERN)
    env = image_env({**server_env(database_url, fake_groq), **TINY_TRAIN_ENV, "MODEL_DIR": str(tmp_path / "models"),
                     "BASE_MODEL": str(tiny_model_dir), "AUTO_TRAIN_THRESHOLD": "10"})
    with gunicorn(env, cwd=image) as base_url:
        assert requests.get(f"{base_url}/health/ready", timeout=10).json() == {"ready": True}
        statuses = [requests.post(f"{base_url}/api/chat", json={"message": f"I feel anxious, day {i}"},
                                  timeout=30).status_code for i in range(12)]

    training = subprocess.run([sys.executable, "-m", "trainer", "train"], cwd=image, env=env,
                              capture_output=True, text=True, timeout=600)

    assert statuses == [200] * 12
    assert training.returncode == 0, training.stderr[-3000:]
    assert f"Model saved to: {tmp_path / 'models'}" in training.stderr
    assert [r["status"] for r in stored_runs(database_url)] == ["succeeded"]


def stored_runs(database_url: str) -> list[dict]:
    """The training runs in the database the image's processes wrote to."""
    from sqlalchemy import text

    from storage.engine import make_engine

    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return [dict(r._mapping) for r in connection.execute(text("SELECT * FROM training_runs ORDER BY id"))]
    finally:
        engine.dispose()
