"""Risky messages at the HTTP boundary: the crisis lines, Groq's reply under the crisis protocol with the fixed
reply as fallback, never the local model, and the safety judge agreeing, disagreeing, late or unreadable."""

import json
import logging

import pytest

from assistant.safety.judge import POLICY, parse_level
from assistant.safety.resources import language
from assistant.turn import CRISIS_PROTOCOL
from telemetry.logs import use_format
from tests.conftest import CHAT_MODEL, JUDGE_MODEL, save_version, sse_events, stored
from tests.fakes.groq_server import Behaviour
from tests.test_local_ai import loaded_version, local_app, wait_for
from tests.test_safety_screening import METHOD, PROTOCOL_REPLY

HIGH_MESSAGE = "I'm going to kill myself tonight"  # high by the patterns
MEDIUM_MESSAGE = "Sometimes I wish I was dead"  # medium by the patterns
CALM_MESSAGE = "I feel anxious about my exam tomorrow"
NORMAL_REPLY = "That sounds like a lot to carry. What has been weighing on you most this week?"


def judged(level: str) -> Behaviour:
    return Behaviour(text=json.dumps({"level": level}))


def chat(client, message: str, stream: bool = False, **fields):
    response = client.post("/api/chat", json={"message": message, "stream": stream, **fields})
    assert response.status_code == 200, response.get_data(as_text=True)
    return sse_events(response.get_data()) if stream else response.get_json()


def system_prompts(fake_groq) -> list[str]:
    return [r.body["messages"][0]["content"] for r in fake_groq.requests_for(CHAT_MODEL)]


def is_protocol(prompt: str) -> bool:
    return prompt.startswith(CRISIS_PROTOCOL[:80])


def test_a_patients_crisis_gets_the_lines_and_groqs_reply_under_the_crisis_protocol(app, client, fake_groq):
    fake_groq.then_for(CHAT_MODEL, Behaviour(text=PROTOCOL_REPLY))
    fake_groq.then_for(JUDGE_MODEL, judged("high"))

    body = chat(client, HIGH_MESSAGE)

    assert (body["source"], body["risk_level"], body["reply"], body["status"]) == ("groq", "high", PROTOCOL_REPLY, "ok")
    assert [line["contact"] for line in body["resources"]][:3] == ["988", "741741", "911"]
    asked = fake_groq.requests_for(CHAT_MODEL)[0].body["messages"]
    assert is_protocol(asked[0]["content"]) and "Text HOME to 741741" in asked[0]["content"]
    assert asked[-1] == {"role": "user", "content": HIGH_MESSAGE}
    judge = fake_groq.requests_for(JUDGE_MODEL)[0].body
    assert judge["messages"][0]["content"] == POLICY and HIGH_MESSAGE in judge["messages"][1]["content"]
    user, reply = stored(app)
    assert (user["risk_level"], user["risk_layer"], user["judge_level"]) == ("high", "patterns", "high")
    assert (reply["source"], reply["risk_level"], reply["content"]) == ("groq", "high", PROTOCOL_REPLY)


def test_a_patients_crisis_streams_the_lines_before_any_reply_text(app, client, fake_groq):
    fake_groq.then_for(CHAT_MODEL, Behaviour(text=PROTOCOL_REPLY))

    events = chat(client, HIGH_MESSAGE, stream=True)

    assert events[0]["risk_level"] == "high" and events[0]["resources"][0]["contact"] == "988"
    assert "delta" not in events[0] and events[1] == {"delta": PROTOCOL_REPLY}
    assert events[-1]["done"] and (events[-1]["source"], events[-1]["reply"]) == ("groq", PROTOCOL_REPLY)
    assert stored(app)[1]["content"] == PROTOCOL_REPLY


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("groq, status, fallback", [
    (Behaviour(status=500), "ok", "crisis_upstream_error"),
    (Behaviour(delay=1.5, text=PROTOCOL_REPLY), "ok", "crisis_timeout"),
    (Behaviour(text=METHOD), "blocked", None),
], ids=["groq-fails", "groq-slow", "reply-withheld"])
def test_the_fixed_crisis_reply_answers_when_groq_cannot(make_app, fake_groq, stream, groq, status, fallback):
    app = make_app(crisis_reply_timeout=0.5)
    fake_groq.then_for(CHAT_MODEL, groq)

    events = chat(app.test_client(), HIGH_MESSAGE, stream=stream)

    done = events[-1] if stream else events
    assert (done["source"], done["status"], done["fallback"], done["risk_level"]) == ("safety", status, fallback, "high")
    assert "988" in done["reply"] and "hanging" not in done["reply"] and done["resources"]
    if stream:
        assert events[0]["resources"] and [e["delta"] for e in events if "delta" in e] == [done["reply"]]
    shown = [r for r in stored(app) if r["role"] == "assistant" and r["status"] != "blocked"]
    assert [(r["source"], r["fallback"]) for r in shown] == [("safety", fallback)]


def test_with_use_local_ai_risky_turns_are_answered_by_groq_never_the_local_model(
        make_app, settings, fake_groq, tiny_model_dir):
    version = save_version(settings, tiny_model_dir)
    app = local_app(make_app, settings)
    wait_for(lambda: loaded_version(app) == version)
    client = app.test_client()
    fake_groq.then_for(CHAT_MODEL, Behaviour(text=NORMAL_REPLY), Behaviour(text=PROTOCOL_REPLY))

    calm, medium, high = (chat(client, m) for m in (CALM_MESSAGE, MEDIUM_MESSAGE, HIGH_MESSAGE))

    assert (calm["source"], calm["risk_level"]) == ("local", "none")
    assert (medium["source"], medium["risk_level"]) == ("groq", "medium") and medium["reply"].startswith(NORMAL_REPLY)
    assert (high["source"], high["risk_level"], high["reply"]) == ("groq", "high", PROTOCOL_REPLY)
    assert [is_protocol(p) for p in system_prompts(fake_groq)] == [False, True]


def test_the_judge_lowers_a_medium_message_to_none(app, client, fake_groq, admin_headers):
    fake_groq.then_for(CHAT_MODEL, Behaviour(text=NORMAL_REPLY))
    fake_groq.then_for(JUDGE_MODEL, judged("none"))

    body = chat(client, MEDIUM_MESSAGE)

    assert (body["risk_level"], body["reply"]) == ("none", NORMAL_REPLY) and "resources" not in body
    user, reply = stored(app)
    assert (user["risk_level"], user["risk_layer"], user["judge_level"]) == ("none", "judge", "none")
    assert reply["risk_level"] == "none"
    assert client.get("/api/stats", headers=admin_headers).get_json()["eligible_since_last_training"] == 1


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_the_judge_raises_a_medium_message_to_high_and_the_crisis_protocol_answers(app, client, fake_groq, stream):
    fake_groq.then_for(CHAT_MODEL, Behaviour(text=NORMAL_REPLY), Behaviour(text=PROTOCOL_REPLY))
    fake_groq.then_for(JUDGE_MODEL, judged("high"))

    events = chat(client, MEDIUM_MESSAGE, stream=stream)

    done = events[-1] if stream else events
    assert (done["risk_level"], done["source"], done["reply"]) == ("high", "groq", PROTOCOL_REPLY)
    if stream:
        assert events[0]["risk_level"] == "high" and not any(NORMAL_REPLY in e.get("delta", "") for e in events)
    assert [is_protocol(p) for p in system_prompts(fake_groq)] == [False, True]
    user = stored(app)[0]
    assert (user["risk_level"], user["risk_layer"], user["judge_level"]) == ("high", "judge", "high")
    assert [r["content"] for r in stored(app) if r["role"] == "assistant"] == [PROTOCOL_REPLY]


def test_the_judge_lowers_a_high_message_and_groq_answers_normally(app, client, fake_groq):
    fake_groq.then_for(CHAT_MODEL, *[Behaviour(text=NORMAL_REPLY)] * 2)  # the crisis call, dropped, and the normal one
    fake_groq.then_for(JUDGE_MODEL, judged("none"))

    body = chat(client, HIGH_MESSAGE)

    assert (body["risk_level"], body["source"], body["reply"]) == ("none", "groq", NORMAL_REPLY)
    assert "resources" not in body
    assert sorted(is_protocol(p) for p in system_prompts(fake_groq)) == [False, True]
    assert [r["risk_level"] for r in stored(app)] == ["none", "none"]


@pytest.mark.parametrize("judge", [
    Behaviour(delay=1.0, text='{"level": "none"}'), Behaviour(status=500), Behaviour(malformed=True),
    Behaviour(text="This message is probably fine, or maybe high."),
], ids=["late", "error", "malformed", "unreadable"])
def test_when_the_judge_gives_no_verdict_the_local_one_stands(make_app, fake_groq, judge):
    app = make_app(safety_judge_timeout=0.3)
    fake_groq.then_for(JUDGE_MODEL, judge)

    body = chat(app.test_client(), MEDIUM_MESSAGE)

    assert body["risk_level"] == "medium" and body["resources"] and "988" in body["reply"]
    user = stored(app)[0]
    assert (user["risk_level"], user["risk_layer"], user["judge_level"]) == ("medium", "patterns", None)


def test_calm_messages_are_not_judged_and_an_empty_judge_model_turns_the_judge_off(make_app, fake_groq):
    chat(make_app().test_client(), CALM_MESSAGE)
    body = chat(make_app(safety_judge_model=None).test_client(), MEDIUM_MESSAGE)

    assert body["risk_level"] == "medium" and not fake_groq.requests_for(JUDGE_MODEL)


@pytest.mark.parametrize("answer, level", [
    ('{"level": "high"}', "high"), ("medium", "medium"), ("None.", "none"),
    ('Reasoning first. Final: {"level": "none"}', "none"), ('{"level": "urgent"}', None),
    ('{"level": "high"} or {"level": "none"}', None), ("", None),
])
def test_the_judges_answer_is_read_strictly(answer, level):
    assert parse_level(answer) == level


@pytest.mark.parametrize("texts, lang", [
    (["ya no aguanto más, quiero morirme"], "es"), (["I can't do this anymore"], "en"),
    (["hola", "no sé qué hacer con mi vida"], "es"), (["ok"], "en"),
])
def test_the_conversations_language_picks_the_crisis_lines(texts, lang):
    assert language(*texts) == lang


def test_the_safety_report_counts_levels_layers_and_the_judges_agreement(app, client, fake_groq, admin_headers):
    fake_groq.then_for(JUDGE_MODEL, judged("medium"), judged("none"), judged("high"))
    chat(client, CALM_MESSAGE)
    chat(client, MEDIUM_MESSAGE)  # the judge agrees
    chat(client, MEDIUM_MESSAGE)  # the judge lowers it
    chat(client, f"{HIGH_MESSAGE}. Tell jo.smith@example.com I'm sorry")  # the judge agrees
    chat(client, MEDIUM_MESSAGE, training_consent=False)  # no verdict (an echo); never listed

    report = client.get("/api/admin/safety", headers=admin_headers).get_json()

    assert client.get("/api/admin/safety").status_code == 401
    assert report["by_level"] == {"none": 2, "medium": 2, "high": 1}
    assert {(r["level"], r["layer"]): r["count"] for r in report["by_layer"]} == {
        ("none", None): 1, ("none", "judge"): 1, ("medium", "patterns"): 2, ("high", "patterns"): 1}
    assert report["judge"] == {"answered": 3, "agreed": 2, "overruled": 1, "agreement": 0.6667}
    assert [(m["risk_level"], m["risk_layer"], m["judge_level"]) for m in report["recent"]] == [
        ("high", "patterns", "high"), ("none", "judge", "none"), ("medium", "patterns", "medium")]
    assert "jo.smith@example.com" not in report["recent"][0]["text"] and "kill myself" in report["recent"][0]["text"]


class KeptLines(logging.Handler):
    """The lines a process would write, kept."""

    def __init__(self):
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(self.format(record))


def test_the_crisis_calls_and_the_judge_log_with_the_requests_id(make_app, fake_groq):
    kept = KeptLines()
    use_format(kept, "json")
    fake_groq.then_for(CHAT_MODEL, Behaviour(status=500))
    fake_groq.then_for(JUDGE_MODEL, Behaviour(status=500))
    logging.getLogger().addHandler(kept)
    try:
        body = make_app().test_client().post("/api/chat", json={"message": HIGH_MESSAGE},
                                             headers={"X-Request-ID": "crisis-7"}).get_json()
    finally:
        logging.getLogger().removeHandler(kept)

    lines = [json.loads(line) for line in kept.lines]
    groq_failed = [line for line in lines if line["message"] == "Groq answered HTTP 500"]
    assert body["source"] == "safety" and len(groq_failed) == 2  # the crisis reply's call and the judge's
    assert [line["request_id"] for line in groq_failed] == ["crisis-7", "crisis-7"]
    assert any(line["message"].startswith("The safety judge did not answer") and line["request_id"] == "crisis-7"
               for line in lines)
