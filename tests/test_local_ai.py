"""USE_LOCAL_AI=1: replies from the active version, whole and streamed; Groq when the local model cannot."""

import time
from dataclasses import replace
from pathlib import Path

from tests.conftest import save_version, sse_events, stored
from tests.fakes.groq_server import Behaviour

# Greedy decoding of the random tiny model: the same reply every time, and no early end-of-turn.
GREEDY = {"temperature": 0.0, "max_new_tokens": 24}


def local_app(make_app, settings, **local):
    return make_app(use_local_ai=True, local=replace(settings.local, poll_seconds=0.2, **{**GREEDY, **local}))


def wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def loaded_version(app):
    return app.extensions["therapistai"].assistant.local.status()["loaded_version"]


def test_the_active_version_answers_whole_and_streamed_and_is_never_a_training_target(
        make_app, settings, fake_groq, tiny_model_dir, admin_headers):
    version = save_version(settings, tiny_model_dir)
    app = local_app(make_app, settings)
    wait_for(lambda: loaded_version(app) == version)
    client = app.test_client()

    whole = client.post("/api/chat", json={"message": "I feel anxious"}).get_json()
    events = sse_events(client.post("/api/chat", json={"message": "I feel anxious", "stream": True}).data)

    assert whole["source"] == "local" and whole["model"] == version and whole["fallback"] is None
    assert whole["reply"]
    assert events[-1]["done"] and events[-1]["source"] == "local"
    assert "".join(e["delta"] for e in events[:-1]) == events[-1]["reply"] == whole["reply"]  # greedy: same text
    assert not fake_groq.received
    replies = [r for r in stored(app) if r["role"] == "assistant"]
    assert [(r["source"], r["model"], r["status"]) for r in replies] == [("local", version, "ok")] * 2
    assert all(r["completion_tokens"] > 0 and r["prompt_tokens"] > 20 for r in replies)
    stats = client.get("/api/stats", headers=admin_headers).get_json()
    assert stats["eligible_since_last_training"] == 0 and stats["replies_by_source"] == {"local": 2}
    assert stats["use_local_ai"] is True and stats["local_model"]["loaded_version"] == version


def test_without_an_active_version_groq_answers_and_the_reply_says_so(make_app, settings, fake_groq):
    fake_groq.default = Behaviour(text="From Groq.")
    app = local_app(make_app, settings)
    client = app.test_client()

    body = client.post("/api/chat", json={"message": "hello"}).get_json()
    events = sse_events(client.post("/api/chat", json={"message": "hello", "stream": True}).data)

    assert (body["source"], body["reply"], body["fallback"]) == ("groq", "From Groq.", "local_unavailable")
    assert events[-1]["source"] == "groq" and events[-1]["fallback"] == "local_unavailable"
    assert [r["fallback"] for r in stored(app) if r["role"] == "assistant"] == ["local_unavailable"] * 2


def test_a_corrupt_active_version_falls_back_to_groq_and_the_service_stays_up(
        make_app, settings, fake_groq, tiny_model_dir, admin_headers):
    version = save_version(settings, tiny_model_dir)
    weights = next((Path(settings.model_dir) / version).glob("*.safetensors"))
    weights.write_bytes(b"\0" * weights.stat().st_size)  # same size: only the checksum tells
    fake_groq.default = Behaviour(text="From Groq.")
    app = local_app(make_app, settings)
    client = app.test_client()
    wait_for(lambda: client.get("/api/stats", headers=admin_headers).get_json()["local_model"]["load_error"])

    body = client.post("/api/chat", json={"message": "hello"}).get_json()

    assert (body["source"], body["fallback"]) == ("groq", "local_unavailable")
    assert client.get("/health").status_code == 200
    load_error = client.get("/api/stats", headers=admin_headers).get_json()["local_model"]["load_error"]
    assert version in load_error and "does not match its SHA-256" in load_error


def test_a_reply_over_local_timeout_is_answered_by_groq(make_app, settings, fake_groq, tiny_model_dir):
    save_version(settings, tiny_model_dir)
    fake_groq.default = Behaviour(text="From Groq.")
    app = local_app(make_app, settings, timeout=0.1, max_new_tokens=1500)
    wait_for(lambda: loaded_version(app) is not None)

    body = app.test_client().post("/api/chat", json={"message": "hello"}).get_json()

    assert (body["source"], body["reply"], body["fallback"]) == ("groq", "From Groq.", "local_timeout")


def test_a_newly_activated_version_replaces_the_loaded_one(make_app, settings, fake_groq, tiny_model_dir):
    first = save_version(settings, tiny_model_dir)
    app = local_app(make_app, settings)
    wait_for(lambda: loaded_version(app) == first)
    client = app.test_client()
    stream = client.post("/api/chat", json={"message": "hello", "stream": True}, buffered=False)
    first_chunk = next(stream.response)  # a reply in flight on the first version

    second = save_version(settings, tiny_model_dir)
    wait_for(lambda: loaded_version(app) == second)
    rest = b"".join(stream.response)

    assert sse_events(first_chunk + rest)[-1]["model"] == first  # the swap did not drop it
    assert client.post("/api/chat", json={"message": "hello"}).get_json()["model"] == second
    assert not fake_groq.received


def test_the_text_a_local_model_decodes_holds_no_nul(settings, tiny_model_dir):
    from assistant.local_model import LoadedModel

    loaded = LoadedModel.load("tiny", tiny_model_dir, settings.local)
    ids = loaded.tokenizer.encode("calm\u0000 down")  # the byte-level vocabulary has a token for byte 0

    assert "\u0000" in loaded.tokenizer.decode(ids) and loaded.text(ids) == "calm down"
