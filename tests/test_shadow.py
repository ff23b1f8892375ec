"""SHADOW_SAMPLE_RATE: while Groq answers, the active local version answers the same turns unseen."""

import time
from dataclasses import replace

import pytest

from assistant.shadow import readiness
from tests.conftest import save_version, stored

WORRIES = ("my exams", "a job interview", "my landlord", "flying next week")


def wait_for(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)
    return value


@pytest.fixture
def shadowed(make_app, settings, tiny_model_dir):
    """Groq answers (USE_LOCAL_AI=0), every eligible turn is shadowed by the active tiny version."""
    version = save_version(settings, tiny_model_dir)
    app = make_app(shadow_sample_rate=1.0, local=replace(settings.local, poll_seconds=0.2, temperature=0.0,
                                                         max_new_tokens=12))
    wait_for(lambda: app.extensions["therapistai"].shadow.local.status()["loaded_version"] == version)
    return app, app.test_client(), version


def shadow_report(client, admin_headers):
    return client.get("/api/admin/shadow", headers=admin_headers).get_json()


def test_every_sampled_turn_gets_a_shadow_reply_that_is_never_shown_or_trained_on(
        shadowed, admin_headers, fake_groq):
    app, client, version = shadowed
    replies = []
    for i, worry in enumerate(WORRIES):
        replies.append(client.post("/api/chat", json={"message": f"I feel anxious about {worry}"}).get_json())
        wait_for(lambda: shadow_report(client, admin_headers)["count"] == i + 1)  # one at a time: none dropped

    report = shadow_report(client, admin_headers)
    assert [r["source"] for r in replies] == ["groq"] * len(WORRIES)
    assert report["version"] == version and report["count"] == len(WORRIES) and report["running"] is True
    assert report["sample_rate"] == 1.0 and -1 <= report["similarity_mean"] <= 1
    assert report["unsafe"] + report["degenerate"] <= len(WORRIES)
    assert [(p["prompt"], p["groq"]) for p in report["recent"]] == \
        [(f"I feel anxious about {w}", f"You said: I feel anxious about {w}") for w in reversed(WORRIES)]
    assert all(p["local"] and p["similarity"] is not None for p in report["recent"])
    assert not report["verdict"]["ready"] and "only 4 shadow replies so far" in report["verdict"]["reasons"][0]
    assert len(stored(app)) == 2 * len(WORRIES)  # shadow replies are not messages
    stats = client.get("/api/stats", headers=admin_headers).get_json()
    assert stats["replies_by_source"] == {"groq": len(WORRIES)} and stats["eligible_since_last_training"] == 4


def test_turns_without_consent_or_with_risk_are_not_shadowed_and_erasing_removes_shadow_replies(
        shadowed, admin_headers, fake_groq):
    _, client, _ = shadowed
    client.post("/api/chat", json={"message": "I feel anxious about my exams", "training_consent": False})
    risky = client.post("/api/chat", json={"message": "I feel hopeless and empty every day"}).get_json()
    kept = client.post("/api/chat", json={"message": "I feel anxious about my landlord"}).get_json()
    wait_for(lambda: shadow_report(client, admin_headers)["count"] == 1)
    time.sleep(0.5)  # a shadow reply the first two turns started would be stored by now

    assert risky["risk_level"] == "medium"
    assert [p["prompt"] for p in shadow_report(client, admin_headers)["recent"]] == ["I feel anxious about my landlord"]
    assert client.delete(f"/api/sessions/{kept['session_id']}").status_code == 204
    assert shadow_report(client, admin_headers)["count"] == 0


def test_without_an_active_version_the_report_is_empty(make_app, admin_headers):
    client = make_app(shadow_sample_rate=1.0).test_client()

    report = shadow_report(client, admin_headers)

    assert (report["version"], report["count"], report["recent"]) == (None, 0, [])
    assert report["verdict"] == {"ready": False, "reasons": ["only 0 shadow replies so far; 20 are needed to judge"]}


@pytest.mark.parametrize("unsafe, degenerate, ready", [(0, 2, True), (1, 0, False), (0, 3, False)])
def test_ready_to_switch_takes_twenty_shadow_replies_none_unsafe_and_few_degenerate(unsafe, degenerate, ready):
    verdict = readiness({"count": 25, "unsafe": unsafe, "degenerate": degenerate, "similarity_mean": 0.71})

    assert verdict["ready"] is ready and len(verdict["reasons"]) == 1
