"""GET /api/stats: admin token handling and the figures it reports."""

import pytest

from tests.conftest import ADMIN_TOKEN


def test_stats_answer_403_when_no_admin_token_is_configured(make_app, admin_headers):
    response = make_app(admin_token=None).test_client().get("/api/stats", headers=admin_headers)

    assert response.status_code == 403 and "ADMIN_TOKEN" in response.get_json()["error"]["message"]


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {ADMIN_TOKEN}", f"Bearer {ADMIN_TOKEN}x", "Bearer"])
def test_stats_answer_401_without_the_right_token(client, header):
    response = client.get("/api/stats", headers={"Authorization": header} if header else {})

    assert response.status_code == 401 and response.headers["WWW-Authenticate"] == "Bearer"


def test_stats_count_messages_by_role_and_source(make_app, admin_headers):
    client = make_app(crisis_reply="fixed").test_client()  # the crisis turn is the safety layer's reply
    client.post("/api/chat", json={"message": "hello"})
    client.post("/api/chat", json={"message": "hello", "role": "clinician"})
    client.post("/api/chat", json={"message": "I want to kill myself"})
    client.post("/api/chat", json={"message": "no consent", "training_consent": False})

    stats = client.get("/api/stats", headers=admin_headers).get_json()

    assert stats["messages"] == 8 and stats["sessions"] == 4
    assert stats["user_messages_by_role"] == {"patient": 3, "clinician": 1}
    assert stats["replies_by_source"] == {"groq": 3, "safety": 1}
    assert stats["eligible_since_last_training"] == 2  # not the crisis turn, not the one without consent
    assert stats["auto_train_threshold"] == 100 and stats["use_local_ai"] is False
    assert stats["auto_training"]["enabled"] is False and stats["groq"]["configured"] is True
