"""Bad requests get a JSON 4xx with a clear message, and nothing stored is lost."""

import pytest

from tests.conftest import stored

LONG = "x" * 4001


@pytest.mark.parametrize("body, status, code", [
    ({"message": ""}, 400, "empty_message"),
    ({"message": "   \n\t "}, 400, "empty_message"),
    ({}, 400, "empty_message"),
    ({"message": None}, 400, "empty_message"),
    ({"message": LONG}, 400, "message_too_long"),
    ({"message": 42}, 400, "invalid_field"),
    ({"message": ["hi"]}, 400, "invalid_field"),
    ({"message": {"text": "hi"}}, 400, "invalid_field"),
    ({"message": "hi", "stream": "yes"}, 400, "invalid_field"),
    ({"message": "hi", "stream": 1}, 400, "invalid_field"),
    ({"message": "hi", "training_consent": "true"}, 400, "invalid_field"),
    ({"message": "hi", "session_id": 123}, 400, "invalid_field"),
    ({"message": "hi", "role": "doctor"}, 400, "invalid_field"),
    ({"message": "hi", "role": 1}, 400, "invalid_field"),
    ({"message": "hi", "user_id": "u" * 129}, 400, "invalid_field"),
    ({"message": "hi\x00there"}, 400, "invalid_field"),
    ({"message": "hi", "mesage": "typo"}, 400, "unknown_field"),
    ({"message": "hi", "session_id": "does-not-exist"}, 404, "session_not_found"),
])
def test_bad_chat_body_answers_4xx_json(app, client, body, status, code):
    client.post("/api/chat", json={"message": "kept"})
    before = stored(app)

    response = client.post("/api/chat", json=body)

    assert response.status_code == status and response.is_json
    error = response.get_json()["error"]
    assert error["code"] == code and len(error["message"]) > 10
    assert stored(app) == before


@pytest.mark.parametrize("data, content_type", [
    ("not json at all", "application/json"),
    ('{"message": "unterminated', "application/json"),
    ('["message", "hi"]', "application/json"),
    ('"just a string"', "application/json"),
    ("", "application/json"),
    ("message=hi", "application/x-www-form-urlencoded"),
    (b"\xff\xfe\x00garbage", "application/json"),
])
def test_non_object_json_answers_400(client, data, content_type):
    response = client.post("/api/chat", data=data, content_type=content_type)

    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_json"


def test_body_over_64_kb_answers_413(client):
    response = client.post("/api/chat", data='{"message": "' + "a" * 70_000 + '"}', content_type="application/json")

    assert response.status_code == 413 and response.get_json()["error"]["code"] == "body_too_large"


def test_message_at_the_limit_is_accepted(make_app):
    response = make_app(max_message_chars=10).test_client().post("/api/chat", json={"message": "0123456789"})

    assert response.status_code == 200


@pytest.mark.parametrize("method, path, status", [
    ("get", "/no/such/route", 404),
    ("get", "/api/chat", 405),
    ("put", "/health", 405),
    ("get", "/api/sessions/unknown/messages", 404),
    ("patch", "/api/sessions/unknown", 400),
    ("delete", "/api/sessions/unknown", 404),
])
def test_unknown_routes_and_methods_answer_json(client, method, path, status):
    response = getattr(client, method)(path)

    assert response.status_code == status and response.is_json
    assert "Traceback" not in response.get_data(as_text=True)


def test_wrong_method_names_the_allowed_ones(client):
    response = client.put("/api/sessions/abc")

    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) == {"PATCH", "DELETE", "OPTIONS"}


@pytest.mark.parametrize("raw, code", [
    ("[" * 60_000, "invalid_json"),  # deeper than the parser's stack, under the 64 KB limit
    ('{"message": ' + "[" * 30_000 + "]" * 30_000 + "}", "invalid_json"),
    ('{"message": "hello \\ud800 there"}', "invalid_field"),  # a lone surrogate, as JSON allows writing it
    ('{"message": "hello", "user_id": "\\udfff"}', "invalid_field"),
    ('{"message": "hello", "session_id": "\\ud83d"}', "invalid_field"),
    ('{"message": "hello", "\\ud800": 1}', "unknown_field"),
])
def test_hostile_json_answers_400_and_stores_nothing(app, client, raw, code):
    client.post("/api/chat", json={"message": "kept"})
    before = stored(app)

    response = client.post("/api/chat", data=raw, content_type="application/json")

    assert response.status_code == 400 and response.get_json()["error"]["code"] == code
    assert stored(app) == before


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
@pytest.mark.parametrize("session_id", ["a%00b", "a%C3%A9b", "x" * 65, "..%2F..", "%ED%A0%80"])
def test_a_path_id_that_was_never_issued_answers_404_on_every_database(app, client, method, session_id):
    kept = client.post("/api/chat", json={"message": "kept"}).get_json()["session_id"]
    path = f"/api/sessions/{session_id}" + ("/messages" if method == "get" else "")

    response = getattr(client, method)(path, json={"training_consent": False} if method == "patch" else None)

    assert response.status_code == 404 and response.get_json()["error"]["code"] in ("session_not_found", "not_found")
    assert len(client.get(f"/api/sessions/{kept}/messages").get_json()["messages"]) == 2
