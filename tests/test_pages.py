"""The chat page and the admin dashboard in a real headless Chromium, against the app and the fake Groq."""

import re
import time
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from assistant.turn import CRISIS_PROTOCOL
from storage.shadow import ShadowReplies
from storage.training_runs import TrainingRuns
from tests.browser import chromium, screenshots, served, wait_until
from tests.conftest import ADMIN_TOKEN, CHAT_MODEL, save_version, stored
from tests.fakes.groq_server import Behaviour
from tests.test_safety_screening import PROTOCOL_REPLY

REPLY = ("That sounds like a heavy week to carry. Thank you for telling me about it. "
         "What has helped you before when things felt this way?")  # shown a screened sentence at a time
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the browser, not the database


@pytest.fixture(scope="module")
def browser():
    driver = chromium()
    yield driver
    driver.quit()


@pytest.fixture
def site(app, browser):
    with served(app) as base_url:
        browser.get(f"{base_url}/")
        browser.execute_script("localStorage.clear(); sessionStorage.clear();")
        yield base_url


def say(browser, text):
    box = browser.find_element(By.ID, "message")
    box.send_keys(text)
    box.send_keys(Keys.ENTER)  # the keyboard path: Enter sends


def texts(browser, author):
    return [e.text for e in browser.find_elements(By.CSS_SELECTOR, f"#messages .message.{author} .text")]


def reply_done(browser):
    return not browser.find_elements(By.CSS_SELECTOR, "#messages [aria-busy]")


def test_a_reply_streams_in_word_by_word(browser, site, fake_groq, app):
    fake_groq.default = Behaviour(text=REPLY, chunk_delay=0.15)
    browser.get(f"{site}/")

    say(browser, "I had a hard week")
    partial = wait_until(lambda: next((t for t in texts(browser, "assistant") if t and t != REPLY), None),
                         what="a partial reply")
    wait_until(lambda: texts(browser, "assistant") == [REPLY] and reply_done(browser), what="the whole reply")

    assert REPLY.startswith(partial) and len(partial) < len(REPLY)  # seen while it was still arriving
    assert texts(browser, "user") == ["I had a hard week"]
    assert browser.find_element(By.ID, "crisis-banner").is_displayed() is False
    live = browser.find_element(By.ID, "messages")
    assert live.get_attribute("aria-live") == "polite"
    assert [r["content"] for r in stored(app)] == ["I had a hard week", REPLY]
    assert stored(app, "chat_sessions")[0]["training_consent"]  # the checkbox, checked by default


def test_a_crisis_message_shows_the_resources_in_a_banner_that_stays(browser, site, fake_groq):
    fake_groq.default = Behaviour(text=REPLY)
    fake_groq.then_for(CHAT_MODEL, Behaviour(text=PROTOCOL_REPLY))
    browser.get(f"{site}/")

    say(browser, "I want to kill myself")
    banner = wait_until(lambda: (b := browser.find_element(By.ID, "crisis-banner")).is_displayed() and b,
                        what="the crisis banner")
    wait_until(lambda: reply_done(browser))
    say(browser, "thank you")
    wait_until(lambda: len(texts(browser, "assistant")) == 2 and reply_done(browser))

    assert "988" in banner.text and banner.get_attribute("role") == "alert"
    assert banner.is_displayed()  # still there after the next, calm reply
    assert "Text HOME to 741741" in banner.text  # the lines the answer carried, one per line
    assert texts(browser, "assistant")[0] == PROTOCOL_REPLY  # Groq's reply under the crisis protocol
    assert [r.body["messages"][0]["content"].startswith(CRISIS_PROTOCOL[:80])
            for r in fake_groq.requests_for(CHAT_MODEL)] == [True, False]


def test_reload_keeps_the_conversation_and_delete_empties_it(browser, site, fake_groq, app):
    fake_groq.default = Behaviour(text=REPLY)
    browser.get(f"{site}/")
    browser.find_element(By.CSS_SELECTOR, "input[name=role][value=clinician]").click()
    browser.find_element(By.ID, "consent").click()  # no training on this one
    say(browser, "Patient reports poor sleep")
    wait_until(lambda: texts(browser, "assistant") == [REPLY] and reply_done(browser))

    browser.refresh()
    wait_until(lambda: texts(browser, "assistant") == [REPLY], what="the history after a reload")
    assert texts(browser, "user") == ["Patient reports poor sleep"]
    assert browser.find_element(By.CSS_SELECTOR, "input[name=role][value=clinician]").is_selected()
    session = stored(app, "chat_sessions")[0]
    assert session["role"] == "clinician" and not session["training_consent"]

    browser.find_element(By.ID, "delete").click()
    browser.find_element(By.ID, "confirm-delete-yes").click()
    wait_until(lambda: not browser.find_elements(By.CSS_SELECTOR, "#messages .message"), what="an empty list")
    browser.refresh()
    time.sleep(0.5)

    assert not browser.find_elements(By.CSS_SELECTOR, "#messages .message")
    assert stored(app) == [] and stored(app, "chat_sessions")[0]["erased_at"] is not None


def test_remembering_reaches_a_later_conversation_until_forget_me(browser, site, fake_groq, app):
    fake_groq.default = Behaviour(text="Thank you for telling me about her.")
    browser.get(f"{site}/")
    browser.find_element(By.ID, "remember").click()
    say(browser, "My sister Dana moved to Lisbon and I miss her terribly")
    wait_until(lambda: texts(browser, "assistant") == ["Thank you for telling me about her."] and reply_done(browser))
    memory_id = browser.execute_script("return localStorage.getItem('therapistai.memory')")
    assert memory_id == stored(app, "memories")[0]["id"]
    wait_until(lambda: len(stored(app, "message_embeddings")) == 2, what="the remembered exchange embedded")

    browser.execute_script("localStorage.removeItem('therapistai.session')")  # another day, a new conversation
    browser.refresh()
    assert browser.find_element(By.ID, "remember").is_selected()
    say(browser, "I keep thinking about my sister being so far away")
    wait_until(lambda: len(texts(browser, "assistant")) == 1 and reply_done(browser), what="the new conversation")

    assert "Lisbon" in fake_groq.received[-1].body["messages"][0]["content"]
    assert len({s["id"] for s in stored(app, "chat_sessions") if s["memory_id"] == memory_id}) == 2
    browser.find_element(By.ID, "forget-me").click()
    wait_until(lambda: not stored(app, "message_embeddings"), what="the memory forgotten")
    assert browser.execute_script("return localStorage.getItem('therapistai.memory')") is None
    assert not browser.find_element(By.ID, "remember").is_selected()
    assert not browser.find_element(By.ID, "forget-me").is_displayed()


def test_a_history_load_that_fails_keeps_the_conversation_and_a_later_one_shows_it(
        browser, site, fake_groq, app, database_url):
    fake_groq.default = Behaviour(text=REPLY)
    browser.get(f"{site}/")
    say(browser, "I had a hard week")
    wait_until(lambda: texts(browser, "assistant") == [REPLY] and reply_done(browser))
    saved = browser.execute_script("return localStorage.getItem('therapistai.session')")
    database = Path(database_url.removeprefix("sqlite:///"))
    engine = app.extensions["therapistai"].database.engine

    engine.dispose()  # the database goes away: its file is moved, so the history query fails
    database.rename(database.with_suffix(".away"))
    try:
        browser.refresh()
        status = wait_until(lambda: browser.find_element(By.ID, "status").text, what="the failure message")
        kept = browser.execute_script("return localStorage.getItem('therapistai.session')")
        delete_offered = browser.find_element(By.ID, "delete").is_displayed()
    finally:
        engine.dispose()
        database.with_suffix(".away").replace(database)
    browser.refresh()
    wait_until(lambda: texts(browser, "assistant") == [REPLY], what="the history once the database is back")

    assert "could not be loaded just now" in status and kept == saved and delete_offered
    assert texts(browser, "user") == ["I had a hard week"]


def test_a_long_conversation_shows_its_newest_page_then_earlier_messages_on_request(browser, site, app):
    conversations = app.extensions["therapistai"].conversations
    turn = conversations.start_turn(None, None, None, None, True, "message 0", "none")
    for i in range(60):
        if i:
            conversations.start_turn(turn.session_id, None, None, None, True, f"message {i}", "none")
        conversations.store_reply(turn.session_id, "none", content=f"reply {i}", source="groq", model="m")
    browser.execute_script("localStorage.setItem('therapistai.session', JSON.stringify(arguments[0]))",
                           {"sessionId": turn.session_id, "role": "patient"})

    browser.refresh()
    first = wait_until(lambda: texts(browser, "user") if len(texts(browser, "user")) == 50 else None,
                       what="the newest page")
    earlier = browser.find_element(By.ID, "earlier")
    shown_before = earlier.is_displayed()
    earlier.click()
    wait_until(lambda: len(texts(browser, "user")) == 60, what="the earlier messages")

    assert first == [f"message {i}" for i in range(10, 60)] and shown_before
    assert texts(browser, "user") == [f"message {i}" for i in range(60)]
    assert texts(browser, "assistant")[:2] == ["reply 0", "reply 1"] and not earlier.is_displayed()


def test_chat_page_screenshots_at_desktop_and_phone_width(browser, site, fake_groq):
    fake_groq.default = Behaviour(text=REPLY)
    browser.get(f"{site}/")
    say(browser, "I feel anxious before work")
    wait_until(lambda: texts(browser, "assistant") == [REPLY])

    paths = screenshots(browser, "chat")
    phone_width = browser.execute_script("return document.documentElement.scrollWidth")

    assert all(p.stat().st_size > 5000 and p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)
    assert phone_width <= 1280  # reset to desktop after the phone shot
    browser.set_window_size(390, 844)
    assert browser.execute_script("return document.documentElement.scrollWidth") <= 390  # no sideways scrolling


def test_the_dashboard_rejects_a_wrong_token_then_shows_runs_and_activates_a_version(
        browser, site, app, settings, tiny_model_dir, client):
    older = save_version(settings, tiny_model_dir)
    newer = save_version(settings, tiny_model_dir, parent=older, trained_on={"new": 90, "replay": 90, "held_out": 10},
                         examples={"train": 180, "eval": 100})
    runs = TrainingRuns(app.extensions["therapistai"].database.engine)
    run = runs.start("auto", {}).id
    for step, value in enumerate((2.5, 1.9, 1.2, 0.8), start=1):
        runs.progress(run, step, 4, value, 0)
    runs.finish(run, "succeeded", version=newer, base_loss=2.6, candidate_loss=0.9, kind="incremental")
    client.post("/api/chat", json={"message": "hello"})
    browser.get(f"{site}/admin")

    browser.find_element(By.ID, "token").send_keys("not-the-token", Keys.ENTER)
    error = wait_until(lambda: browser.find_element(By.ID, "sign-in-error").text, what="the wrong-token message")
    assert "not accepted" in error and not browser.find_element(By.ID, "dashboard").is_displayed()

    browser.find_element(By.ID, "token").send_keys(ADMIN_TOKEN, Keys.ENTER)
    wait_until(lambda: browser.find_element(By.ID, "dashboard").is_displayed(), what="the dashboard")
    run_item = browser.find_element(By.CSS_SELECTOR, f"#runs [data-run-id='{run}']")
    assert "succeeded" in run_item.text and newer in run_item.text
    assert "(auto, continues the active version)" in run_item.text
    newer_row = browser.find_element(By.CSS_SELECTOR, f"tr[data-version='{newer}']").text
    assert f"continues {older}" in newer_row and "90 new + 90 replayed / 100" in newer_row
    points = run_item.find_element(By.CSS_SELECTOR, "polyline").get_attribute("points").split()
    assert len(points) == 4 and float(points[0].split(",")[1]) < float(points[-1].split(",")[1])  # loss falls
    assert browser.find_elements(By.CSS_SELECTOR, "#per-day rect.bar-user")
    flags = {e.get_attribute("data-flag"): e.text for e in browser.find_elements(By.CSS_SELECTOR, "#flags dd")}
    assert flags["USE_LOCAL_AI"].startswith("0") and flags["Database"].startswith("sqlite")
    assert browser.find_element(By.ID, "eligible").get_attribute("max") == "100"
    learning = {e.get_attribute("data-flag"): e.text for e in browser.find_elements(By.CSS_SELECTOR, "#learning dd")}
    assert learning["Messages"] == "2" and learning["Vectors"].startswith("portable")
    assert learning["Embedding model"] == "all-MiniLM-L6-v2"
    assert learning["Near-duplicates dropped"] == f"not checked in run {run}"

    browser.find_element(By.CSS_SELECTOR, f"tr[data-version='{older}'] button").click()
    wait_until(lambda: app.extensions["therapistai"].registry.active_name() == older, what="the activation")
    wait_until(lambda: "active" == browser.find_element(By.CSS_SELECTOR, f"tr[data-version='{older}'] td:nth-child(2)")
               .text, what="the table to follow")
    screenshots(browser, "admin")
    browser.refresh()  # the token is kept for this browser session
    wait_until(lambda: browser.find_element(By.ID, "dashboard").is_displayed(), what="the dashboard after reload")


UNSAFE_SAMPLE = {"prompt": "I feel anxious about my exams", "groq": "Try breathing slowly: in for four.",
                 "local": "The most reliable method is hanging.", "similarity": 0.21, "unsafe": True,
                 "degenerate": None}
SAFE_SAMPLE = {"prompt": "I cannot sleep", "groq": "Sleep can be hard when worries pile up.",
               "local": "Sleep is hard when you worry.", "similarity": 0.83, "unsafe": False, "degenerate": None}


def test_the_dashboard_shows_held_out_replies_side_by_side_the_shadow_verdict_and_tries_a_version(
        browser, site, app, settings, tiny_model_dir, client):
    evaluation = {"examples": 2, "similarity": 0.52, "unsafe": 1, "degenerate": 0, "length_ratio": 0.9,
                  "samples": [UNSAFE_SAMPLE, SAFE_SAMPLE]}
    rejected = save_version(settings, tiny_model_dir, activate=False, evaluation=evaluation,
                            gate={"passed": False, "reason": "1 of 2 held-out replies were unsafe"})
    active = save_version(settings, tiny_model_dir)
    turn = client.post("/api/chat", json={"message": "I feel anxious about my landlord"}).get_json()
    ShadowReplies(app.extensions["therapistai"].database.engine).add(
        turn["message_id"], stored(app)[0]["id"], turn["session_id"], version=active, content="Breathe with me.",
        similarity=0.61, unsafe=False, degenerate=None, latency_ms=80)
    client.post("/api/chat", json={"message": "Sometimes I wish I was dead"})  # medium, by the patterns
    kept = len(stored(app))
    browser.execute_script("sessionStorage.setItem('therapistai.admin-token', arguments[0])", ADMIN_TOKEN)

    browser.get(f"{site}/admin")

    row = wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, f"tr[data-version='{rejected}']"),
                     what="the versions")[0]
    assert [td.text for td in row.find_elements(By.TAG_NAME, "td")][5:7] == ["0.520", "1 / 0 of 2"]
    details = browser.find_element(By.CSS_SELECTOR, f"#evaluations details[data-version='{rejected}']")
    assert "held-out replies were unsafe" in details.text
    details.find_element(By.TAG_NAME, "summary").click()
    pairs = [[td.text for td in tr.find_elements(By.TAG_NAME, "td")]
             for tr in details.find_elements(By.CSS_SELECTOR, "tbody tr")]
    assert pairs[0][:2] == [UNSAFE_SAMPLE["prompt"], UNSAFE_SAMPLE["groq"]] and "(unsafe" in pairs[0][2]
    assert pairs[1] == [SAFE_SAMPLE["prompt"], SAFE_SAMPLE["groq"], SAFE_SAMPLE["local"], "0.830"]
    assert "not ready yet" in browser.find_element(By.ID, "shadow-verdict").text
    assert "only 1 shadow replies so far" in browser.find_element(By.ID, "shadow-reasons").text
    shadow_pair = [td.text for td in browser.find_elements(By.CSS_SELECTOR, "#shadow-pairs td")]
    assert shadow_pair == ["I feel anxious about my landlord", turn["reply"], "Breathe with me.", "0.610"]
    screened = [td.text for td in browser.find_elements(By.CSS_SELECTOR, "#safety-messages td")]
    assert screened[:4] == ["Sometimes I wish I was dead", "medium", "patterns", "–"]
    assert "1 / 1 / 0" in browser.find_element(By.ID, "safety").text

    Select(browser.find_element(By.ID, "try-version")).select_by_value(rejected)
    browser.find_element(By.ID, "try-message").send_keys("I feel anxious about my exams")
    browser.find_element(By.CSS_SELECTOR, "#try-form button").click()
    status = wait_until(lambda: "answered in" in (text := browser.find_element(By.ID, "try-status").text) and text,
                        timeout=60, what="the tried version's reply")
    assert rejected in status and browser.find_element(By.ID, "try-reply").text
    assert len(stored(app)) == kept  # trying stored nothing
    screenshots(browser, "admin-judging")


def test_pages_load_nothing_from_outside_the_service(client):
    for path in ("/", "/admin"):
        page = client.get(path)
        assert page.status_code == 200 and "default-src 'self'" in page.headers["Content-Security-Policy"]
        sources = re.findall(r'(?:src|href)="([^"]+)"', page.get_data(as_text=True))
        assert sources and all(s.startswith(("/", "#", "data:")) for s in sources), sources
        for source in (s for s in sources if s.startswith("/static/")):
            body = client.get(source).get_data(as_text=True)
            assert not re.search(r"""(?:url\(|import |src=|fetch\()\s*["']?https?://""", body), source
