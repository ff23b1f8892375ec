"""From logged conversations to training examples: what is in, what is out, the split, the export."""

import json
import subprocess
import sys

import pytest

from assistant.prompts import SYSTEM_PROMPTS
from tests.conftest import stored
from tests.fakes.groq_server import Behaviour
from config import Settings
from embeddings.model import shared_embedder
from storage.training_data import TrainingData
from trainer.dataset import Example, keep_sides, load_split, split_by_conversation, without_near_duplicates

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent


def chat(client, message, **fields):
    """One turn through the API; its JSON."""
    return client.post("/api/chat", json={"message": message, **fields}).get_json()


def training_data(app) -> TrainingData:
    """What training reads of the app's database."""
    return TrainingData(app.extensions["therapistai"].database.engine)


def examples(app, history_turns=10):
    """Every example the database yields, train and eval together."""
    split = load_split(training_data(app), history_turns, 0.1)
    return split.train + split.eval


def test_one_example_per_groq_reply_with_system_prompt_history_and_reply(app, client):
    first = chat(client, "I can't sleep", role="clinician")
    chat(client, "Any tips?", session_id=first["session_id"])

    found = sorted(examples(app), key=lambda e: e.message_id)

    assert len(found) == 2
    assert found[1].messages == [
        {"role": "system", "content": SYSTEM_PROMPTS["clinician"]},
        {"role": "user", "content": "I can't sleep"},
        {"role": "assistant", "content": "You said: I can't sleep"},
        {"role": "user", "content": "Any tips?"},
        {"role": "assistant", "content": "You said: Any tips?"},
    ]


def test_history_is_capped_at_history_turns(app, client):
    session_id = chat(client, "turn 0")["session_id"]
    for i in range(1, 4):
        chat(client, f"turn {i}", session_id=session_id)

    last = max(examples(app, history_turns=1), key=lambda e: e.message_id)

    assert [m["content"] for m in last.messages[1:]] == ["turn 2", "You said: turn 2", "turn 3", "You said: turn 3"]


def test_excluded_replies_never_become_targets(app, client, fake_groq):
    keep = chat(client, "a calm question")
    chat(client, "no consent here", training_consent=False)
    chat(client, "I want to kill myself")  # safety reply, high risk
    chat(client, "I sometimes wish I was dead")  # medium risk
    fake_groq.then(Behaviour(status=500))
    chat(client, "this one fails")
    erased = chat(client, "erase me")
    client.delete(f"/api/sessions/{erased['session_id']}")
    conversations = app.extensions["therapistai"].conversations
    local = chat(client, "answered locally")
    conversations.store_reply(local["session_id"], "none", content="local words", source="local", model="m")
    conversations.store_reply(local["session_id"], "none", content="cut off", source="groq", model="m",
                              status="truncated")
    withdrawn = chat(client, "consent withdrawn later")
    client.patch(f"/api/sessions/{withdrawn['session_id']}", json={"training_consent": False})

    targets = {e.message_id: e.messages[-1]["content"] for e in examples(app)}

    assert targets == {keep["message_id"]: "You said: a calm question", local["message_id"]: "You said: answered locally"}


def test_near_duplicate_examples_are_dropped_keeping_the_earliest(app, client, fake_groq):
    fake_groq.default = Behaviour(text="Keep a regular bedtime and put the phone away an hour before.")
    first = chat(client, "How can I sleep better?")
    reworded = chat(client, "How do I sleep better?")  # 0.988 to the first, and the same reply
    other_reply = chat(client, "How can I sleep better?")
    fake_groq.default = Behaviour(text="Short walks in daylight help many people feel calmer.")
    chat(client, "How can I sleep better?")  # the same question, another answer: kept
    chat(client, "What can I do when I feel anxious at work?")
    split = load_split(training_data(app), 10, 0.1)

    kept, dropped = without_near_duplicates(split, shared_embedder(Settings.embeddings_dir)[0])

    assert dropped == 2
    kept_ids = {e.message_id for e in kept.train + kept.eval}
    assert first["message_id"] in kept_ids and len(kept_ids) == 3
    assert not {reworded["message_id"], other_reply["message_id"]} & kept_ids


def test_unclean_exchanges_are_left_out_of_later_context(app, client):
    session_id = chat(client, "hello")["session_id"]
    chat(client, "I have been self-harming", session_id=session_id)  # medium: not context
    chat(client, "how do I sleep better?", session_id=session_id)

    last = max(examples(app), key=lambda e: e.message_id)

    assert [m["content"] for m in last.messages[1:]] == ["hello", "You said: hello", "how do I sleep better?",
                                                         "You said: how do I sleep better?"]


def test_pii_is_redacted_in_examples_but_not_in_the_stored_rows(app, client):
    chat(client, "mail me at sam@example.com or call 415-555-0132")

    (example,) = examples(app)

    assert example.messages[1]["content"] == "mail me at [EMAIL] or call [PHONE]"
    assert example.messages[2]["content"] == "You said: mail me at [EMAIL] or call [PHONE]"
    assert stored(app)[0]["content"] == "mail me at sam@example.com or call 415-555-0132"


def fake_conversations(n):
    """n conversations of two examples each."""
    return [[Example(f"session-{i}", 2 * i + j, []) for j in range(2)] for i in range(n)]


@pytest.mark.parametrize("conversations, held_out", [(0, 0), (1, 0), (2, 1), (9, 1), (20, 2), (35, 4)])
def test_split_holds_out_about_a_tenth_of_conversations_at_least_one(conversations, held_out):
    split = split_by_conversation(fake_conversations(conversations), 0.1)

    eval_sessions = {e.session_id for e in split.eval}
    assert len(eval_sessions) == held_out
    assert not eval_sessions & {e.session_id for e in split.train}
    assert len(split.train) + len(split.eval) == 2 * conversations


def test_split_is_deterministic_and_stable_as_data_grows():
    first = split_by_conversation(fake_conversations(20), 0.1)
    again = split_by_conversation(list(reversed(fake_conversations(20))), 0.1)

    assert {e.session_id for e in first.eval} == {e.session_id for e in again.eval}


def test_a_conversation_keeps_its_recorded_side_as_the_history_grows():
    first = split_by_conversation(fake_conversations(10), 0.1)
    sides = {e.session_id: True for e in first.eval} | {e.session_id: False for e in first.train}
    trained = {e.session_id for e in first.train}

    grown = split_by_conversation(fake_conversations(15), 0.1, sides)

    held_out = {e.session_id for e in grown.eval}
    assert {e.session_id for e in first.eval} <= held_out and not trained & held_out
    assert len(held_out) == 2  # a tenth of fifteen, rounded: one of the five new ones
    # Without the recorded sides, the lowest two of fifteen by hash take in one that was trained on.
    assert trained & {e.session_id for e in split_by_conversation(fake_conversations(15), 0.1).eval}


@pytest.mark.parametrize("fraction, conversations, held_out", [(0.3, 110, 3), (0.07, 200, 7)])
def test_a_raised_fraction_holds_out_only_its_share_of_new_conversations(fraction, conversations, held_out):
    sides = {f"session-{i}": False for i in range(100)}  # recorded when nothing was held out

    split = split_by_conversation(fake_conversations(conversations), fraction, sides)

    # 33 (or 14) are lacking; only the fraction of the new ones (10 or 100; 100 * 0.07 is 7.000000000000001) is taken
    assert len({e.session_id for e in split.eval}) == held_out


def test_training_runs_record_each_conversations_side_in_the_database(app, client):
    data = training_data(app)
    first_ids = {chat(client, f"first week, day {i}")["session_id"] for i in range(10)}
    first = load_split(data, 10, 0.1)
    keep_sides(data, first)
    for i in range(30):
        chat(client, f"second month, day {i}")

    grown = load_split(data, 10, 0.1)
    updated = {row["id"]: row["updated_at"] for row in stored(app, "chat_sessions")}
    keep_sides(data, grown)

    recorded = {row["id"]: row["held_out"] for row in stored(app, "chat_sessions")}
    assert {row["id"]: row["updated_at"] for row in stored(app, "chat_sessions")} == updated
    assert {recorded[s] for s in first_ids} == {True, False}
    assert {s for s in first_ids if recorded[s]} == {e.session_id for e in first.eval}
    assert {s for s, held in recorded.items() if held} == {e.session_id for e in grown.eval}
    assert len({e.session_id for e in grown.eval}) == 4 and None not in recorded.values()


def test_export_writes_chat_jsonl(app, client, settings, tmp_path):
    chat(client, "first")
    chat(client, "second, at jo@example.org")
    out = tmp_path / "export" / "examples.jsonl"

    result = subprocess.run([sys.executable, "-m", "trainer", "export", "--out", str(out)], cwd=ROOT,
                            env={"DATABASE_URL": settings.database_url, "PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True, timeout=120)

    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 2 and all(set(line) == {"messages"} for line in lines)
    assert {line["messages"][-1]["content"] for line in lines} == {"You said: first", "You said: second, at [EMAIL]"}
