"""Reading, consenting and erasing a conversation by its session id."""

import pytest

from tests.conftest import chat_while_groq_answers, sse_events, stored
from tests.fakes.groq_server import Behaviour


def start(client, message="hello", **fields):
    """Post a message and return the answer's JSON."""
    return client.post("/api/chat", json={"message": message, **fields}).get_json()


def test_messages_come_back_oldest_first_with_reply_details(client):
    first = start(client, "one")
    start(client, "two", session_id=first["session_id"])

    body = client.get(f"/api/sessions/{first['session_id']}/messages").get_json()

    assert [(m["role"], m["content"]) for m in body["messages"]] == [
        ("user", "one"), ("assistant", "You said: one"), ("user", "two"), ("assistant", "You said: two"),
    ]
    assert body["messages"][1]["source"] == "groq" and body["messages"][1]["status"] == "ok"
    assert body["messages"][0]["created_at"].startswith("20") and "T" in body["messages"][0]["created_at"]


def test_sessions_do_not_see_each_others_messages(client):
    a, b = start(client, "from a"), start(client, "from b")

    messages = client.get(f"/api/sessions/{a['session_id']}/messages").get_json()["messages"]

    assert a["session_id"] != b["session_id"] and len(a["session_id"]) >= 32
    assert [m["content"] for m in messages] == ["from a", "You said: from a"]


def test_consent_defaults_to_the_setting_and_can_be_withdrawn(app, make_app, client):
    session_id = start(client)["session_id"]
    assert stored(app, "chat_sessions")[0]["training_consent"] in (True, 1)

    response = client.patch(f"/api/sessions/{session_id}", json={"training_consent": False})

    assert response.status_code == 200 and response.get_json()["training_consent"] is False
    assert stored(app, "chat_sessions")[0]["training_consent"] in (False, 0)
    opted_out = make_app(training_consent_default=False).test_client()
    start(opted_out)
    assert stored(app, "chat_sessions")[1]["training_consent"] in (False, 0)


def test_consent_sent_with_a_message_updates_the_session(app, client):
    session_id = start(client, training_consent=True)["session_id"]

    start(client, "again", session_id=session_id, training_consent=False)

    assert stored(app, "chat_sessions")[0]["training_consent"] in (False, 0)


def test_patch_rejects_a_missing_or_wrong_consent(client):
    session_id = start(client)["session_id"]

    for body in ({}, {"training_consent": "no"}, {"training_consent": False, "other": 1}):
        response = client.patch(f"/api/sessions/{session_id}", json=body)
        assert response.status_code == 400 and response.is_json


def test_delete_erases_the_conversation_and_only_it(app, client):
    gone, kept = start(client, "forget me"), start(client, "keep me")

    response = client.delete(f"/api/sessions/{gone['session_id']}")

    assert response.status_code == 204
    assert [m["content"] for m in stored(app)] == ["keep me", "You said: keep me"]
    assert client.get(f"/api/sessions/{gone['session_id']}/messages").status_code == 410
    again = client.post("/api/chat", json={"message": "back?", "session_id": gone["session_id"]})
    assert again.status_code == 410 and again.get_json()["error"]["code"] == "session_deleted"
    assert client.delete(f"/api/sessions/{gone['session_id']}").status_code == 410
    assert client.get(f"/api/sessions/{kept['session_id']}/messages").status_code == 200


def test_history_survives_a_restart_on_the_same_database(make_app):
    session_id = start(make_app().test_client(), "remember this")["session_id"]

    restarted = make_app().test_client()

    messages = restarted.get(f"/api/sessions/{session_id}/messages").get_json()["messages"]
    assert [m["content"] for m in messages] == ["remember this", "You said: remember this"]


@pytest.mark.parametrize("stream", [False, True])
def test_erasing_while_the_reply_is_written_keeps_nothing_of_it(app, client, fake_groq, stream):
    session_id = start(client, "first")["session_id"]
    fake_groq.then(Behaviour(text="A reply nobody should keep.", delay=1.0))
    body = {"message": "second", "session_id": session_id, "stream": stream}
    with chat_while_groq_answers(app, fake_groq, body) as pending:
        erased = client.delete(f"/api/sessions/{session_id}")
        answer = pending.result(timeout=30)

    assert erased.status_code == 204
    if stream:
        assert sse_events(answer.get_data())[-1]["error"]["code"] == "session_deleted"
    else:
        assert answer.status_code == 410 and answer.get_json()["error"]["code"] == "session_deleted"
    assert [m for m in stored(app) if m["session_id"] == session_id] == []
    assert client.get(f"/api/sessions/{session_id}/messages").status_code == 410


def test_history_comes_in_pages_newest_first_each_oldest_first(client):
    session_id = start(client, "message 0")["session_id"]
    for i in range(1, 12):
        start(client, f"message {i}", session_id=session_id)
    url = f"/api/sessions/{session_id}/messages"

    pages, before = [], None
    while True:
        body = client.get(url, query_string={"limit": 10, **({"before": before} if before else {})}).get_json()
        pages.append(body["messages"])
        if (before := body["next_before"]) is None:
            break

    assert [len(p) for p in pages] == [10, 10, 4]
    joined = [m for page in reversed(pages) for m in page]
    assert joined == client.get(url).get_json()["messages"]  # the default page holds all 24
    assert [m["content"] for m in joined if m["role"] == "user"] == [f"message {i}" for i in range(12)]
    assert pages[0][0]["id"] == client.get(url, query_string={"limit": 10}).get_json()["next_before"]


@pytest.mark.parametrize("query", ["limit=0", "limit=501", "limit=ten", "limit=1.5", "before=-3", "before=0",
                                   "limit=" + "9" * 5000, "before=%D9%A3"])
def test_a_bad_page_request_answers_400(client, query):
    session_id = start(client)["session_id"]

    response = client.get(f"/api/sessions/{session_id}/messages?{query}")

    assert response.status_code == 400 and response.get_json()["error"]["code"] == "invalid_field"
