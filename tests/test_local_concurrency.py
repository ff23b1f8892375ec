"""USE_LOCAL_AI=1 under real gunicorn (one worker, so one batch): concurrent chats each get their own reply, a
client that leaves frees its place in the batch, and past the queue's bound Groq answers with local_busy."""

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ADMIN_TOKEN, NO_LIMIT, save_version
from tests.fakes.groq_server import Behaviour
from tests.servers import gunicorn
from tests.test_local_ai import wait_for

WORRIES = ["I cannot sleep at night", "My exams start tomorrow and I feel sick", "hello there",
           "Work has been heavy this week and my manager keeps adding more", "I argued with my sister",
           "Nothing helps", "What can I do when I panic on the bus?", "thanks for listening"]
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def local_env(settings, fake_groq, **local) -> dict:
    """One worker answering with the tiny model, greedy, in fp32 (int8's arithmetic depends on the batch:
    tests/test_local_batching.py bounds that), plus ``local`` LOCAL_* flags."""
    return {"DATABASE_URL": settings.database_url, "MODEL_DIR": settings.model_dir, "GROQ_API_KEY": "test-key",
            "GROQ_BASE_URL": fake_groq.base_url, "GROQ_MAX_RETRIES": "0", "ADMIN_TOKEN": ADMIN_TOKEN,
            "CHAT_RATE_LIMIT": NO_LIMIT, "WEB_CONCURRENCY": "1", "USE_LOCAL_AI": "1", "LOCAL_THREADS": "1",
            "LOCAL_TEMPERATURE": "0", "LOCAL_QUANTIZE": "0", **{f"LOCAL_{k.upper()}": str(v) for k, v in local.items()}}


def ready(base_url):
    wait_for(lambda: requests.get(f"{base_url}/health/ready", timeout=5).status_code == 200, timeout=60)


def chat(base_url, message):
    return requests.post(f"{base_url}/api/chat", json={"message": message}, timeout=60).json()


def batching(base_url):
    return requests.get(f"{base_url}/api/stats", headers=ADMIN, timeout=10).json()["local_model"]["batching"]


def test_eight_concurrent_chats_each_get_the_reply_they_get_alone(settings, fake_groq, tiny_model_dir):
    save_version(settings, tiny_model_dir)
    with gunicorn({**local_env(settings, fake_groq, max_new_tokens=48), "METRICS_TOKEN": "scraper"}) as base_url:
        ready(base_url)
        with ThreadPoolExecutor(max_workers=len(WORRIES)) as pool:
            together = list(pool.map(lambda m: chat(base_url, m), WORRIES))
        alone = [chat(base_url, m) for m in WORRIES]
        stats = batching(base_url)
        scraped = {(s.name, s.labels.get("le")): s.value for family in text_string_to_metric_families(
            requests.get(f"{base_url}/metrics", headers={"Authorization": "Bearer scraper"}, timeout=10).text)
            for s in family.samples}

    assert [r["source"] for r in together] == ["local"] * len(WORRIES)
    assert len({r["reply"] for r in alone}) == len(WORRIES)  # distinct replies, so cross-talk would show
    assert [r["reply"] for r in together] == [r["reply"] for r in alone]
    assert not fake_groq.received
    assert stats["running"] == stats["waiting"] == 0 and stats["max_batch"] == 8
    steps = {int(size): count for size, count in stats["steps_by_batch_size"].items()}
    assert scraped[("therapistai_local_batch_size_count", None)] == sum(steps.values())  # /metrics: every step
    assert scraped[("therapistai_local_batch_size_bucket", "1.0")] == steps.get(1, 0)
    assert scraped[("therapistai_local_queue_depth", None)] == 0
    assert scraped[("therapistai_local_tokens_total", None)] > 0


@pytest.fixture
def one_place(settings, fake_groq, tiny_model_dir):
    """A server whose batch holds one reply and no queue, and whose replies run long (1,700 tokens, with a prompt
    of about 270)."""
    save_version(settings, tiny_model_dir)
    fake_groq.default = Behaviour(text="From Groq.")
    with gunicorn(local_env(settings, fake_groq, max_batch=1, max_queue=0, max_new_tokens=1700,
                            timeout=600)) as base_url:
        ready(base_url)
        yield base_url


def open_stream(base_url, message="hello"):
    """A streamed chat, read up to its first chunk (the reply has its first token and its place)."""
    response = requests.post(f"{base_url}/api/chat", json={"message": message, "stream": True}, stream=True,
                             timeout=60)
    next(response.iter_content(chunk_size=None))
    return response


def test_a_client_that_leaves_frees_its_place_for_the_next_reply(one_place):
    leaving = open_stream(one_place)
    leaving.close()  # the socket goes away mid-reply

    wait_for(lambda: batching(one_place)["left_early"] == 1)
    answer = chat(one_place, "are you there")

    assert batching(one_place)["running"] == 0
    assert (answer["source"], answer["fallback"]) == ("local", None)


def test_past_the_queue_bound_groq_answers_with_local_busy(one_place, fake_groq):
    # Six chats at once for one place and no queue: whichever reaches the model first answers, the others find it
    # taken (each long reply holds the place far longer than the six take to arrive).
    with ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda i: chat(one_place, f"are you there {i}"), range(6)))

    outcomes = sorted((a["source"], a["fallback"]) for a in answers)
    assert ("groq", "local_busy") in outcomes and ("local", None) in outcomes
    assert set(outcomes) == {("groq", "local_busy"), ("local", None)}
    assert all(a["reply"] == "From Groq." for a in answers if a["source"] == "groq")
    assert len(fake_groq.received) == outcomes.count(("groq", "local_busy"))
