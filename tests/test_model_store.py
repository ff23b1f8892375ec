"""MODEL_STORE_URL: versions published to a real S3 API on loopback, cached and verified, the active one in the
database; a trainer and a web process that share only the database and the bucket."""

import itertools
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlparse

import boto3
import pytest
import requests
from transformers import AutoModelForCausalLM

from registry.versions import RegistryError
from tests.browser import wait_until
from tests.conftest import ADMIN_TOKEN, TINY_TRAIN_ENV, opened_registry, save_version
from tests.fakes.groq_server import Behaviour
from tests.servers import ROOT, gunicorn
from tests.test_gunicorn import server_env
from tests.test_trainer_e2e import PATTERN, WORRIES


HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def bucket_keys(store_url: str) -> list[str]:
    """Every object key in the store's bucket."""
    bucket = urlparse(store_url).netloc
    listing = boto3.client("s3").list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in listing.get("Contents", []))


def flip_a_byte(data: bytes) -> bytes:
    """The same length, one byte different."""
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:]


@pytest.fixture
def stores(settings, model_bucket, tmp_path):
    """The settings of two processes with separate MODEL_DIRs, one database and one bucket."""
    url, _ = model_bucket
    shared = replace(settings, model_store_url=url, aws_region="us-east-1")
    return replace(shared, model_dir=str(tmp_path / "trainer")), replace(shared, model_dir=str(tmp_path / "web"))


def test_a_published_version_is_listed_fetched_into_an_empty_cache_and_verified(stores, tiny_model_dir):
    trainer, web = stores
    name = save_version(trainer, tiny_model_dir)
    keys = bucket_keys(trainer.model_store_url)

    with opened_registry(web) as registry:
        listed = [v.name for v in registry.versions()]
        folder = registry.local(registry.active())
        cached = (folder / "model.safetensors").read_bytes()
        (folder / "model.safetensors").write_bytes(flip_a_byte(cached))  # a damaged cache is fetched again
        refetched = registry.local(registry.get(name))

    assert f"versions/{name}/metadata.json" in keys and f"versions/{name}/model.safetensors" in keys
    assert listed == [name]
    assert str(folder).startswith(web.model_dir) and refetched == folder
    assert (folder / "model.safetensors").read_bytes() == cached
    AutoModelForCausalLM.from_pretrained(folder)


def test_a_version_whose_files_in_the_bucket_do_not_match_their_checksums_is_refused(stores, tiny_model_dir):
    trainer, web = stores
    name = save_version(trainer, tiny_model_dir)
    bucket, key = urlparse(trainer.model_store_url).netloc, f"versions/{name}/model.safetensors"
    s3 = boto3.client("s3")
    s3.put_object(Bucket=bucket, Key=key, Body=flip_a_byte(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))

    with opened_registry(web) as registry, pytest.raises(RegistryError, match="does not match its SHA-256"):
        registry.local(registry.active())

    assert not list(Path(web.model_dir).glob(f"*{name}*"))  # nothing of it is left to be served


def test_an_unfinished_upload_is_not_a_version_and_retention_clears_the_bucket(stores, tiny_model_dir):
    trainer, _ = stores
    trainer = replace(trainer, model_keep=1)
    older = save_version(trainer, tiny_model_dir, activate=False)
    newer = save_version(trainer, tiny_model_dir)
    bucket = urlparse(trainer.model_store_url).netloc
    boto3.client("s3").put_object(Bucket=bucket, Key="versions/model_20200101_000000/model.safetensors", Body=b"x")

    with opened_registry(trainer) as registry:
        before = [v.name for v in registry.versions()]
        removed = registry.prune()
        after = [v.name for v in registry.versions()]

    assert before == [newer, older] and removed == [older] and after == [newer]
    assert not [k for k in bucket_keys(trainer.model_store_url) if older in k]


def test_an_unreachable_store_is_named_with_the_variables_to_check(settings, model_bucket, tmp_path):
    missing = replace(settings, model_store_url="s3://no-such-bucket/versions", aws_region="us-east-1")

    with opened_registry(missing) as registry, pytest.raises(RegistryError) as error:
        registry.check_writable()

    assert "s3://no-such-bucket/versions" in str(error.value) and "AWS_ENDPOINT_URL" in str(error.value)
    assert "test-secret" not in str(error.value)


NEXT_WORRY = itertools.count()


def chat_source(base_url: str) -> tuple[str, str]:
    """Who answers a chat; each about another worry, so that training does not drop them as near-duplicates."""
    message = f"I feel anxious about {WORRIES[next(NEXT_WORRY) % len(WORRIES)]}"
    response = requests.post(f"{base_url}/api/chat", json={"message": message}, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()["source"], response.json()["model"]


def wait_for_model(base_url: str, version: str) -> None:
    """Until the web process answers with ``version``."""
    wait_until(lambda: chat_source(base_url) == ("local", version), timeout=120, what=f"replies from {version}")


def test_a_trainer_and_a_web_replica_share_only_the_database_and_the_bucket(
        stores, model_bucket, database_url, fake_groq, tiny_model_dir):
    trainer, web = stores
    url, aws = model_bucket
    fake_groq.default = Behaviour(text=PATTERN)
    common = {**server_env(database_url, fake_groq), **aws, "MODEL_STORE_URL": url, "ADMIN_TOKEN": ADMIN_TOKEN}
    trainer_env = {**common, **TINY_TRAIN_ENV, "MODEL_DIR": trainer.model_dir, "BASE_MODEL": str(tiny_model_dir),
                   "AUTO_TRAIN_THRESHOLD": "10"}
    web_env = {**common, "MODEL_DIR": web.model_dir, "USE_LOCAL_AI": "1", "MODEL_POLL_SECONDS": "0.5",
               "WEB_CONCURRENCY": "1", "LOCAL_TEMPERATURE": "0", "LOCAL_MAX_NEW_TOKENS": "24"}

    def trainer_cli(*args):
        return subprocess.run([sys.executable, "-m", "trainer", *args], cwd=ROOT, env=trainer_env,
                              capture_output=True, text=True, timeout=600)

    with gunicorn(web_env) as base_url:
        before = [chat_source(base_url) for _ in range(12)]
        trained = trainer_cli("train")
        assert trained.returncode == 0, trained.stderr[-3000:]
        first = requests.get(f"{base_url}/api/admin/models", headers=HEADERS, timeout=10).json()["active"]
        wait_for_model(base_url, first)
        second = save_version(trainer, tiny_model_dir, activate=False)  # published, not active
        assert trainer_cli("activate", second).returncode == 0
        wait_for_model(base_url, second)
        assert trainer_cli("activate", first).returncode == 0  # roll back
        wait_for_model(base_url, first)

    assert {source for source, _ in before} == {"groq"}  # no version yet
    # each process has its own copy: nothing but the bucket is shared. The trained version holds an
    # adapter; the one saved from a whole model holds its weights.
    for name, weights in ((first, "adapter_model.safetensors"), (second, "model.safetensors")):
        web_copy, trainer_copy = Path(web.model_dir) / name, Path(trainer.model_dir) / name
        assert (web_copy / weights).read_bytes() == (trainer_copy / weights).read_bytes()
        # the replica reads metadata from the bucket; its cache holds the version's files
        assert {p.name for p in web_copy.iterdir()} == {p.name for p in trainer_copy.iterdir()} - {"metadata.json"}


def test_a_replica_forgets_cached_versions_that_retention_removed_from_the_bucket(stores, tiny_model_dir):
    trainer, web = stores
    trainer = replace(trainer, model_keep=1)
    older = save_version(trainer, tiny_model_dir)
    with opened_registry(web) as replica:
        replica.local(replica.active())
        newer = save_version(trainer, tiny_model_dir)
        with opened_registry(trainer) as registry:
            registry.prune()
        replica.local(replica.active())

    assert sorted(p.name for p in Path(web.model_dir).iterdir()) == [newer]
    assert older < newer


def test_the_admin_api_answers_503_when_the_store_cannot_be_reached(make_app, settings, model_bucket, admin_headers):
    client = make_app(model_store_url="s3://no-such-bucket/versions", aws_region="us-east-1").test_client()

    listing = client.get("/api/admin/models", headers=admin_headers)
    activation = client.post("/api/admin/models/model_20260101_000000/activate", headers=admin_headers)

    for response in (listing, activation):
        assert response.status_code == 503 and response.headers["Retry-After"] == "30"
        error = response.get_json()["error"]
        assert error["code"] == "model_store_unavailable" and "MODEL_STORE_URL" in error["message"]
        assert "test-secret" not in error["message"]
