"""POST /api/chat with stream: true: server-sent events, and what is stored when streams end early."""

import pytest

from tests.conftest import CHAT_MODEL, sse_events, stored
from tests.fakes.groq_server import Behaviour


CALM = "Take a slow breath with me. Notice your feet on the floor and let your shoulders drop. Good."


def test_reply_streams_screened_sentences_then_done(app, client, fake_groq):
    fake_groq.then(Behaviour(text=CALM))  # the fake sends it word by word
    response = client.post("/api/chat", json={"message": "tell me something calm", "stream": True})

    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    events = sse_events(response.get_data())
    deltas, done = [e["delta"] for e in events[:-1]], events[-1]
    # held until enough words to judge, then released a screened sentence end at a time
    assert deltas == ["Take a slow breath with me. Notice your feet on the floor and let your shoulders drop. ", "Good."]
    assert done["done"] is True and done["reply"] == CALM and done["status"] == "ok"
    assert (done["source"], done["risk_level"]) == ("groq", "none")
    reply = stored(app)[1]
    assert (reply["id"], reply["content"], reply["status"]) == (done["message_id"], done["reply"], "ok")
    assert reply["completion_tokens"] == 18 and reply["finish_reason"] == "stop"  # the fake counts words


def test_client_that_leaves_mid_stream_gets_what_was_generated_stored_as_truncated(app, client, fake_groq):
    fake_groq.then(Behaviour(text=CALM))
    response = client.post("/api/chat", json={"message": "one two three four five six", "stream": True},
                           buffered=False)
    received = next(chunk for chunk in response.response if chunk.startswith(b"data: "))  # past ":" comments

    response.close()  # what the server does when the client's socket goes away

    user, reply = stored(app)
    sent = "".join(e["delta"] for e in sse_events(received))
    assert sent == "Take a slow breath with me. Notice your feet on the floor and let your shoulders drop. "
    assert reply["status"] == "truncated" and reply["content"].startswith(sent)


def test_stream_cut_by_groq_is_stored_as_error_with_its_partial_text(app, client, fake_groq):
    fake_groq.then(Behaviour(text="alpha beta gamma delta", drop_after_chunks=2))

    events = sse_events(client.post("/api/chat", json={"message": "hi", "stream": True}).get_data())

    assert [e for e in events if "delta" in e] == []  # nothing unscreened was shown
    assert events[-1]["error"]["code"] == "upstream_error" and events[-1]["error"]["session_id"]
    reply = stored(app)[1]
    assert (reply["status"], reply["content"], reply["id"]) == ("error", "alpha beta", events[-1]["error"]["message_id"])


@pytest.mark.parametrize("drop, code", [("reset", "upstream_error"), ("stall", "upstream_timeout")])
def test_a_groq_connection_that_resets_or_stalls_midway_ends_the_stream_with_an_error_event(
        make_app, fake_groq, drop, code):
    app = make_app(groq_timeout=1.0)
    fake_groq.then(Behaviour(text="alpha beta gamma delta", drop_after_chunks=2, drop=drop))

    events = sse_events(app.test_client().post("/api/chat", json={"message": "hi", "stream": True}).get_data())

    error = events[-1]["error"]
    assert error["code"] == code and error["session_id"] and error["message_id"]
    user, reply = stored(app)
    assert (user["content"], reply["status"], reply["error"], reply["id"]) == ("hi", "error", code, error["message_id"])
    assert reply["content"] == "alpha beta"  # what Groq had sent is kept


def test_stream_that_fails_before_it_starts_answers_json_error(app, client, fake_groq):
    fake_groq.then(Behaviour(status=500))

    response = client.post("/api/chat", json={"message": "hi", "stream": True})

    assert response.status_code == 502 and response.is_json
    assert [m["role"] for m in stored(app)] == ["user", "assistant"]


def test_with_crisis_reply_fixed_a_crisis_message_streams_the_lines_then_the_fixed_reply(make_app, fake_groq):
    client = make_app(crisis_reply="fixed").test_client()
    events = sse_events(client.post("/api/chat", json={"message": "I'm going to hang myself", "stream": True}).get_data())

    assert events[0]["risk_level"] == "high" and events[0]["resources"][0]["contact"] == "988"
    assert "988" in events[1]["delta"]
    assert events[-1]["done"] and events[-1]["source"] == "safety" and events[-1]["risk_level"] == "high"
    assert not fake_groq.requests_for(CHAT_MODEL)


def test_medium_risk_stream_ends_with_the_resources(app, client):
    events = sse_events(client.post("/api/chat", json={"message": "I've been self-harming", "stream": True}).get_data())

    assert events[0] == {"resources": events[-1]["resources"], "risk_level": "medium"}
    assert "988" in events[-2]["delta"]
    assert events[-1]["risk_level"] == "medium" and "988" in events[-1]["reply"]
    assert stored(app)[1]["content"] == events[-1]["reply"]
