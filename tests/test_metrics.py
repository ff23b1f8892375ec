"""GET /metrics, X-Request-ID and JSON logs under real gunicorn with two workers: known traffic, counted exactly.

One server serves the whole module: the traffic is sent once, then each test reads what it proves from the
answers, the scrapes and the log.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from prometheus_client.mmap_dict import MmapedDict, mmap_key
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import sse_events
from tests.fakes.groq_server import Behaviour
from tests.servers import gunicorn
from tests.test_gunicorn import server_env

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "metrics-test-token"
PER_WORKER_LIMIT = 12  # chats per worker and hour: the traffic below fits, the flood after it does not
# Words that appear nowhere but in what the client sent: never in a label, never in the log.
MESSAGE = "My purple giraffe Quillby7431 likes painting the garden fence."
USER_ID = "user-zebra-5512"
CHAT, MESSAGES = "/api/chat", "/api/sessions/<session_id>/messages"
SANE_ID, LONG_ID = "turn-1.A_b", "x" * 129
HEX_ID = re.compile(r"[0-9a-f]{32}")


@dataclass
class Served:
    """What the module's server was sent and what it answered, scraped and logged."""

    answers: list[tuple[str, str, int]] = field(default_factory=list)  # (URL rule, method, status)
    turns: Counter = field(default_factory=Counter)  # (source, risk_level, status, stream) of each turn
    groq_calls: int = 0
    streams: int = 0
    ids: set[str] = field(default_factory=set)  # session and memory ids handed out
    request_ids: dict[str, str] = field(default_factory=dict)  # what came back for each id sent
    unauthorized: list[requests.Response] = field(default_factory=list)
    scrapes: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)

    def send(self, method: str, url: str, rule: str, **kwargs) -> requests.Response:
        """One request on a new connection (either worker may take it), its answer recorded."""
        response = requests.request(method, url, timeout=30, **kwargs)
        self.answers.append((rule, method, response.status_code))
        return response

    def turn(self, response: requests.Response, stream: bool) -> dict:
        """A chat answer's body, its turn and ids recorded."""
        body = sse_events(response.content)[-1] if stream else response.json()
        self.turns[(body["source"], body["risk_level"], body["status"], str(stream).lower())] += 1
        self.ids |= {body["session_id"], body["memory_id"]} - {None}
        self.groq_calls += 1
        return body


def stale_counts(folder: Path) -> None:
    """A previous server's count left in the metrics folder: start-up must empty it."""
    folder.mkdir()
    stale = MmapedDict(str(folder / "counter_1.db"))
    stale.write_value(mmap_key("therapistai_rate_limited_total", "therapistai_rate_limited_total", (), (), "h"),
                      1000.0, 0.0)
    stale.close()


def chats(served: Served, base_url: str, fake_groq) -> None:
    """JSON turns (one remembered, one continued), streams, bad requests and a turn Groq fails."""
    first = served.turn(served.send("POST", f"{base_url}{CHAT}", CHAT, headers={"X-Request-ID": SANE_ID},
                                    json={"message": MESSAGE, "user_id": USER_ID, "remember": True}), False)
    served.turn(served.send("POST", f"{base_url}{CHAT}", CHAT, json={"message": "And the fence is blue now.",
                                                                     "session_id": first["session_id"]}), False)
    served.turn(served.send("POST", f"{base_url}{CHAT}", CHAT, json={"message": "Tell me about sleep."}), False)
    for i in range(2):
        served.turn(served.send("POST", f"{base_url}{CHAT}", CHAT, headers={"X-Request-ID": f"stream-{i}"},
                                json={"message": f"How can I sleep better, part {i}?", "stream": True}), True)
    served.streams = 2
    served.send("POST", f"{base_url}{CHAT}", CHAT, data="{not json", headers={"Content-Type": "application/json"})
    served.send("POST", f"{base_url}{CHAT}", CHAT, json={"message": "   "})
    served.send("GET", f"{base_url}/api/sessions/{first['session_id']}/messages", MESSAGES)
    fake_groq.then(Behaviour(status=500))
    failed = served.send("POST", f"{base_url}{CHAT}", CHAT, json={"message": "Is anyone there?"})
    served.ids.add(failed.json()["error"]["session_id"])
    served.groq_calls += 1
    served.turns[("groq", "none", "error", "false")] += 1


def request_ids(served: Served, base_url: str) -> None:
    """Ids sent with requests, sane and not, and the ids of answers given before any view (404)."""
    for given in (SANE_ID, "has a space", LONG_ID, ""):
        served.request_ids[given] = served.send("GET", f"{base_url}/health", "/health",
                                                headers={"X-Request-ID": given}).headers.get("X-Request-ID")
    served.request_ids["404"] = served.send("GET", f"{base_url}/no/such/page", "unmatched").headers.get("X-Request-ID")


def flood(served: Served, base_url: str) -> requests.Response:
    """Chats until one is refused with 429 (a worker's limit is reached); that answer."""
    for _ in range(2 * PER_WORKER_LIMIT + 1):
        response = served.send("POST", f"{base_url}{CHAT}", CHAT, json={"message": "Hello again."})
        if response.status_code == 429:
            return response
        served.turn(response, False)
    raise AssertionError("no request was rate limited")


def scrape(base_url: str, **headers) -> requests.Response:
    return requests.get(f"{base_url}/metrics", headers=headers, timeout=30)


def settled_scrape(served: Served, base_url: str) -> str:
    """A scrape once every chat request sent has been counted (a worker counts one after its last byte)."""
    sent = sum(1 for rule, _, _ in served.answers if rule == CHAT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        text = scrape(base_url, Authorization=f"Bearer {TOKEN}").text
        if sum(value(text, "therapistai_http_requests_total", route=CHAT, method="POST", status=str(s))
               for s in (200, 400, 429, 502)) == sent:
            return text
        time.sleep(0.1)
    raise AssertionError(f"the scrape never counted the {sent} chat requests sent")


@pytest.fixture(scope="module")
def served(fake_groq_server, tmp_path_factory):
    folder = tmp_path_factory.mktemp("metrics")
    stale_counts(folder / "multiproc")
    fake_groq_server.reset()
    env = {**server_env(f"sqlite:///{folder}/chat.db", fake_groq_server), "METRICS_TOKEN": TOKEN,
           "LOG_FORMAT": "json", "CHAT_RATE_LIMIT": f"{PER_WORKER_LIMIT} per hour",
           "PROMETHEUS_MULTIPROC_DIR": str(folder / "multiproc")}
    served = Served()
    with gunicorn(env, log_path=folder / "gunicorn.log") as base_url:
        served.unauthorized = [scrape(base_url), scrape(base_url, Authorization="Bearer wrong-token")]
        served.answers += [("/metrics", "GET", 401)] * 2
        chats(served, base_url, fake_groq_server)
        request_ids(served, base_url)
        served.request_ids["429"] = flood(served, base_url).headers.get("X-Request-ID")
        served.scrapes = [settled_scrape(served, base_url) for _ in range(4)]
    fake_groq_server.reset()
    served.log = (folder / "gunicorn.log").read_text().splitlines()
    return served


def value(text: str, name: str, **labels) -> float:
    """A sample's value in a scrape (0 when absent)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0


def names(text: str) -> set[str]:
    """Every family and sample name in a scrape."""
    families = list(text_string_to_metric_families(text))
    return {f.name for f in families} | {s.name for f in families for s in f.samples}


def test_every_scrape_counts_the_requests_of_both_workers_by_rule_method_and_status(served):
    statuses = Counter(served.answers)
    for text in served.scrapes:
        for (rule, method, status), count in statuses.items():
            counted = value(text, "therapistai_http_requests_total", route=rule, method=method, status=str(status))
            if rule == "/health":  # the start-up polls it too
                assert counted > count
            elif rule != "/metrics" or status == 401:  # the settled scrapes count themselves
                assert counted == count, (rule, method, status)


def test_turns_groq_calls_screenings_and_refusals_are_counted_as_they_happened(served):
    text = served.scrapes[-1]
    refused = Counter(status for rule, _, status in served.answers if rule == CHAT)[429]
    turns = sum(served.turns.values())

    for (source, risk_level, status, stream), count in served.turns.items():
        assert value(text, "therapistai_chat_turns_total", source=source, risk_level=risk_level, status=status,
                     stream=stream) == count
    assert sum(s.value for f in text_string_to_metric_families(text) if f.name == "therapistai_chat_turns"
               for s in f.samples if s.name == "therapistai_chat_turns_total") == turns
    assert served.turns[("groq", "none", "ok", "true")] == served.streams
    assert value(text, "therapistai_groq_errors_total", code="upstream_error") == 1
    assert value(text, "therapistai_rate_limited_total") == refused == 1  # the stale 1000 was emptied at start-up
    assert value(text, "therapistai_screening_verdicts_total", level="none", layer="none") == turns
    assert value(text, "therapistai_groq_request_duration_seconds_count") == served.groq_calls == turns
    assert value(text, "therapistai_groq_time_to_first_token_seconds_count") == served.streams
    assert value(text, "therapistai_screening_duration_seconds_count", kind="message") == turns


def test_the_histograms_have_buckets_sums_and_counts(served):
    text = served.scrapes[-1]
    sent = sum(1 for rule, _, _ in served.answers if rule == CHAT)

    assert value(text, "therapistai_http_request_duration_seconds_count", route=CHAT) == sent
    assert value(text, "therapistai_http_request_duration_seconds_bucket", route=CHAT, le="+Inf") == sent
    assert value(text, "therapistai_http_request_duration_seconds_sum", route=CHAT) > 0
    for name in ("therapistai_groq_request_duration_seconds", "therapistai_groq_time_to_first_token_seconds",
                 "therapistai_local_batch_size", "therapistai_training_run_duration_seconds"):
        assert {f"{name}_bucket", f"{name}_sum", f"{name}_count"} <= names(text), name
    assert value(text, "therapistai_screening_duration_seconds_count", kind="reply") > 0


def test_metrics_need_the_token(served):
    assert [r.status_code for r in served.unauthorized] == [401, 401]
    assert all(r.json()["error"]["code"] == "unauthorized" for r in served.unauthorized)
    assert served.unauthorized[0].headers["WWW-Authenticate"] == "Bearer"


def test_metrics_are_off_without_a_token(client):
    response = client.get("/metrics", headers={"Authorization": "Bearer anything"})

    assert response.status_code == 403 and response.get_json()["error"]["code"] == "metrics_disabled"


def test_a_single_process_serves_its_own_metrics(make_app):
    """The Flask development server, or any one process: no multiprocess folder, the same endpoint."""
    client = make_app(metrics_token=TOKEN).test_client()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    before = client.get("/metrics", headers=headers).get_data(as_text=True)
    client.post(CHAT, json={"message": "Tell me about sleep."}).close()  # a server closes each answer
    after = client.get("/metrics", headers=headers).get_data(as_text=True)

    def counted(text):
        return (value(text, "therapistai_http_requests_total", route=CHAT, method="POST", status="200"),
                value(text, "therapistai_chat_turns_total", source="groq", risk_level="none", status="ok",
                      stream="false"))

    assert [a - b for a, b in zip(counted(after), counted(before))] == [1, 1]
    assert "process_cpu_seconds_total" in after  # the process's own collectors come along


def test_no_label_carries_an_id_or_message_text(served):
    families = list(text_string_to_metric_families(served.scrapes[-1]))
    labels = {v for f in families for s in f.samples for v in s.labels.values()}
    routes = {s.labels["route"] for f in families for s in f.samples if "route" in s.labels}

    assert len(served.ids) >= 6  # the sessions and the memory id
    for secret in (*served.ids, USER_ID, "Quillby7431", "giraffe"):
        assert secret not in served.scrapes[-1]
    assert routes == {CHAT, MESSAGES, "/health", "/metrics", "unmatched"}
    assert all(len(v) <= 40 for v in labels)


def test_every_answer_carries_a_request_id_the_clients_when_it_is_sane(served):
    ids = served.request_ids

    assert ids[SANE_ID] == SANE_ID
    assert all(HEX_ID.fullmatch(ids[given]) for given in ("has a space", LONG_ID, "", "404", "429"))


def test_json_log_lines_carry_the_request_id_and_never_what_was_said(served):
    lines = [json.loads(line) for line in served.log]
    access = [line for line in lines if line["logger"] == "gunicorn.access"]
    stored = {line["request_id"] for line in lines if line["message"].startswith("Chat reply stored")}

    assert all({"time", "level", "logger", "message", "request_id"} <= set(line) for line in lines)
    assert {"request_id": SANE_ID, "route": CHAT, "status": 200} in [
        {k: line[k] for k in ("request_id", "route", "status")} for line in access]
    assert all(isinstance(line["duration"], float) for line in access)
    assert {SANE_ID, "stream-0", "stream-1"} <= stored  # a stream's line too, logged after its view returned
    log = "\n".join(served.log)
    for secret in (*served.ids, USER_ID, "Quillby7431", "giraffe"):
        assert secret not in log


def test_the_dashboard_uses_only_metrics_the_service_exports(served):
    dashboard = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used = {name for expr in expressions for name in re.findall(r"\btherapistai_\w+", expr)}

    assert expressions and all("therapistai_" in expr for expr in expressions)
    assert used - names(served.scrapes[-1]) == set()

