"""POST /api/chat: replies from (fake) Groq, history, and what is stored."""

import logging

import pytest

from assistant.prompts import SYSTEM_PROMPTS
from tests.conftest import CHAT_MODEL, sse_events, stored
from tests.fakes.groq_server import Behaviour


def test_reply_comes_from_groq_and_both_messages_are_stored(app, client, fake_groq):
    response = client.post("/api/chat", json={"message": "I feel anxious today"})

    assert response.status_code == 200
    body = response.get_json()
    assert body["reply"] == "You said: I feel anxious today"
    assert body["source"] == "groq" and body["model"] == "fake-groq-model" and body["risk_level"] == "none"
    user, reply = stored(app)
    assert (user["role"], user["content"], user["session_id"]) == ("user", "I feel anxious today", body["session_id"])
    assert (reply["role"], reply["content"], reply["id"]) == ("assistant", body["reply"], body["message_id"])
    assert (reply["source"], reply["model"], reply["status"], reply["finish_reason"]) == \
        ("groq", "fake-groq-model", "ok", "stop")
    assert reply["completion_tokens"] == 6 and reply["prompt_tokens"] > 0 and reply["latency_ms"] >= 0


def test_request_names_the_configured_model_and_key(make_app, fake_groq):
    make_app(groq_model="some/other-model").test_client().post("/api/chat", json={"message": "hello"})

    (received,) = fake_groq.received
    assert received.body["model"] == "some/other-model"
    assert received.headers["Authorization"] == "Bearer test-key"


def test_conversation_continues_with_history_from_the_database(client, fake_groq):
    first = client.post("/api/chat", json={"message": "My name is Sam"}).get_json()
    second = client.post("/api/chat", json={"message": "What did I say?", "session_id": first["session_id"]})

    assert second.status_code == 200 and second.get_json()["session_id"] == first["session_id"]
    assert fake_groq.received[-1].body["messages"] == [
        {"role": "system", "content": SYSTEM_PROMPTS["patient"]},
        {"role": "user", "content": "My name is Sam"},
        {"role": "assistant", "content": "You said: My name is Sam"},
        {"role": "user", "content": "What did I say?"},
    ]


def test_history_keeps_only_the_last_history_turns_exchanges(make_app, fake_groq):
    client = make_app(history_turns=2).test_client()
    session_id = client.post("/api/chat", json={"message": "turn 0"}).get_json()["session_id"]
    for i in range(1, 5):
        client.post("/api/chat", json={"message": f"turn {i}", "session_id": session_id})

    sent = [m["content"] for m in fake_groq.received[-1].body["messages"][1:]]
    assert sent == ["turn 2", "You said: turn 2", "turn 3", "You said: turn 3", "turn 4"]


def test_clinician_gets_the_clinician_prompt(client, fake_groq):
    client.post("/api/chat", json={"message": "PHQ-9 cut-offs?", "role": "clinician"})

    assert fake_groq.received[-1].body["messages"][0] == {"role": "system", "content": SYSTEM_PROMPTS["clinician"]}
    assert SYSTEM_PROMPTS["clinician"] != SYSTEM_PROMPTS["patient"]


def test_user_message_is_stored_when_groq_fails(app, client, fake_groq):
    fake_groq.then(Behaviour(status=500))

    response = client.post("/api/chat", json={"message": "Are you there?"})

    assert response.status_code == 502
    error = response.get_json()["error"]
    assert error["code"] == "upstream_error" and error["session_id"]
    user, failed = stored(app)
    assert (user["content"], user["session_id"]) == ("Are you there?", error["session_id"])
    assert (failed["status"], failed["error"], failed["content"]) == ("error", "upstream_error", "")


def test_client_can_retry_in_the_same_session_after_a_failure(client, fake_groq):
    fake_groq.then(Behaviour(status=502))
    session_id = client.post("/api/chat", json={"message": "first try"}).get_json()["error"]["session_id"]

    retry = client.post("/api/chat", json={"message": "second try", "session_id": session_id})

    assert retry.status_code == 200
    # the failed reply is not shown to the model as if it had been said
    assert [m["content"] for m in fake_groq.received[-1].body["messages"][1:]] == ["first try", "second try"]


def test_rate_limit_answers_503_with_retry_after(client, fake_groq):
    fake_groq.then(Behaviour(status=429, headers={"retry-after": "7"}))

    response = client.post("/api/chat", json={"message": "hello"})

    assert response.status_code == 503 and response.headers["Retry-After"] == "7"
    assert response.get_json()["error"]["code"] == "upstream_rate_limited"


def test_slow_groq_answers_504(make_app, fake_groq):
    fake_groq.then(Behaviour(delay=1.5))

    response = make_app(groq_timeout=0.3).test_client().post("/api/chat", json={"message": "hello"})

    assert response.status_code == 504 and response.get_json()["error"]["code"] == "upstream_timeout"


def test_unreadable_groq_body_answers_502(client, fake_groq):
    fake_groq.then(Behaviour(malformed=True))

    response = client.post("/api/chat", json={"message": "hello"})

    assert response.status_code == 502 and response.get_json()["error"]["code"] == "upstream_error"


def test_sdk_retries_a_transient_error(make_app, fake_groq):
    fake_groq.then(Behaviour(status=503))

    response = make_app(groq_max_retries=2).test_client().post("/api/chat", json={"message": "hello"})

    assert response.status_code == 200 and len(fake_groq.received) == 2


def test_without_api_key_chat_answers_503_and_health_stays_ok(app, make_app, fake_groq):
    client = make_app(groq_api_key=None).test_client()

    response = client.post("/api/chat", json={"message": "hello"})

    assert response.status_code == 503
    assert "GROQ_API_KEY" in response.get_json()["error"]["message"]
    assert client.get("/health").status_code == 200
    assert fake_groq.received == type(fake_groq.received)()


def test_with_crisis_reply_fixed_a_crisis_message_is_answered_without_a_model(make_app, fake_groq):
    app = make_app(crisis_reply="fixed")
    response = app.test_client().post("/api/chat", json={"message": "I want to kill myself tonight"})

    body = response.get_json()
    assert response.status_code == 200
    assert (body["source"], body["risk_level"]) == ("safety", "high")
    assert "988" in body["reply"] and "741741" in body["reply"] and "911" in body["reply"]
    assert [line["contact"] for line in body["resources"]][:3] == ["988", "741741", "911"]
    assert not fake_groq.requests_for(CHAT_MODEL)
    user, reply = stored(app)
    assert (user["risk_level"], reply["risk_level"], reply["source"]) == ("high", "high", "safety")


def test_crisis_resources_setting_replaces_the_us_numbers(make_app):
    client = make_app(crisis_resources="In the UK call Samaritans on 116 123.").test_client()

    reply = client.post("/api/chat", json={"message": "i am going to end my life"}).get_json()["reply"]

    assert "116 123" in reply and "988" not in reply


def test_medium_risk_lets_the_model_answer_and_appends_resources(app, client, fake_groq):
    body = client.post("/api/chat", json={"message": "Sometimes I wish I was dead"}).get_json()

    assert body["source"] == "groq" and body["risk_level"] == "medium"
    assert body["reply"].startswith("You said: Sometimes I wish I was dead")
    assert "988" in body["reply"]
    assert stored(app)[1]["content"] == body["reply"]


def test_role_cannot_change_within_a_session(client):
    session_id = client.post("/api/chat", json={"message": "hi"}).get_json()["session_id"]

    response = client.post("/api/chat", json={"message": "hi", "session_id": session_id, "role": "clinician"})

    assert response.status_code == 409 and response.get_json()["error"]["code"] == "role_mismatch"


def test_unknown_session_answers_404_and_stores_nothing(app, client):
    response = client.post("/api/chat", json={"message": "hi", "session_id": "no-such-session"})

    assert response.status_code == 404 and response.get_json()["error"]["code"] == "session_not_found"
    assert stored(app) == []


def test_message_text_never_reaches_the_log_at_info(client, fake_groq, caplog):
    caplog.set_level(logging.INFO)
    fake_groq.then(Behaviour(status=500))
    client.post("/api/chat", json={"message": "my secret worry about Alex"})
    client.post("/api/chat", json={"message": "my secret worry about Alex", "stream": True}).get_data()
    client.post("/api/chat", json={"message": "I will kill myself, secret worry about Alex"})

    assert "Chat reply stored" in caplog.text
    assert "secret worry" not in caplog.text and "You said" not in caplog.text


@pytest.mark.parametrize("stream", [False, True])
def test_a_reply_with_nul_characters_is_answered_and_stored_without_them(app, client, fake_groq, stream):
    # PostgreSQL text cannot hold NUL; a random-weight local model emits it as often as any byte
    fake_groq.default = Behaviour(text="Breathe\u0000 in. Breathe out.\u0000")

    response = client.post("/api/chat", json={"message": "I feel tense", "stream": stream})

    assert response.status_code == 200
    body = sse_events(response.data)[-1] if stream else response.get_json()
    _, reply = stored(app)
    assert body["reply"] == reply["content"] == "Breathe in. Breathe out." and reply["status"] == "ok"
