"""How much /api/chat adds over a bare Flask JSON endpoint under the same gunicorn, and how it
compares with the LiteLLM proxy, what users would put in front of Groq instead.

Both Flask apps run with gunicorn.conf.py (2 gthread workers); chat talks to the fake Groq
(no delay) in its own process and logs both turns to SQLite. LiteLLM's proxy (2 uvicorn
workers, installed on first run into .cache/litellm-venv from bench/requirements-litellm.txt)
forwards to the same fake Groq through its OpenAI-compatible provider and stores nothing; its
clients send the conversation themselves, capped at the same history. The chat endpoint runs a
second time without the embedding model (patterns-only screening, as a serving image without it
does), to show what the semantic screening costs, and a third time with metrics off (no METRICS_TOKEN;
the chat endpoint itself runs with metrics on, as deployments scrape it), to show what metrics cost.
16 clients on keep-alive connections each continue
their own conversation; the setups alternate, rounds of each. Each round also runs one client alone
(the overhead of a turn, without queueing) and one client streaming, from the chat endpoint and from the
fake Groq itself: the time to the first text the user sees, against the fake's own time to its first
token. Prints JSON: p50, p99 and requests/s of each, chat against bare and against LiteLLM as ratios,
metrics on against off, and each worker's resident memory once the rounds are done.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from multiprocessing import Pool
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant.prompts import build_messages  # noqa: E402
from config import Settings  # noqa: E402
from tests.servers import free_port, gunicorn, stop, wait_until_up  # noqa: E402

LITELLM_VENV = ROOT / ".cache" / "litellm-venv"
LITELLM_REQUIREMENTS = ROOT / "bench" / "requirements-litellm.txt"
HISTORY_MESSAGES = 2 * Settings().history_turns  # what the chat endpoint sends Groq of a conversation


class ChatTurns:
    """This service's API: the server keeps the conversation; the client sends its session id."""

    path = "/api/chat"

    def __init__(self, _key: str | None, stream: bool = False):
        self.headers = {"Content-Type": "application/json"}
        self.session_id, self.stream = None, stream

    def body(self, message: str) -> dict:
        return {"message": message, **({"session_id": self.session_id} if self.session_id else {}),
                **({"stream": True} if self.stream else {})}

    def answered(self, message: str, payload: dict) -> None:
        self.session_id = payload["session_id"]


class OpenAITurns:
    """An OpenAI-compatible proxy: the client sends the system prompt and the recent conversation."""

    path = "/v1/chat/completions"

    def __init__(self, key: str | None, stream: bool = False):
        self.headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
        self.history: list[tuple[str, str]] = []
        self.stream = stream

    def body(self, message: str) -> dict:
        return {"model": "chat", "messages": build_messages("patient", self.history[-HISTORY_MESSAGES:], message),
                **({"stream": True} if self.stream else {})}

    def answered(self, message: str, payload: dict) -> None:
        self.history += [("user", message), ("assistant", payload["choices"][0]["message"]["content"])]


class FakeGroqTurns(OpenAITurns):
    """The fake Groq itself, streamed: its own time to first token, what a stream through us adds to."""

    path = "/openai/v1/chat/completions"


def client_loop(args: tuple[str, str, str | None, int, int, float, bool]) -> tuple[float, float, list[float]]:
    """One client: `requests` turns on one connection; when it measured, and latencies in ms (for a stream: to the
    first text the user sees)."""
    host_port, api, key, requests, warmup, start_at, stream = args
    host, port = host_port.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    turns = {"chat": ChatTurns, "openai": OpenAITurns, "fake_groq": FakeGroqTurns}[api](key, stream)
    latencies = []
    while time.time() < start_at:
        time.sleep(0.001)
    for i in range(warmup + requests):
        message = f"how do I sleep better, try {i}"
        started = time.perf_counter()
        connection.request("POST", turns.path, json.dumps(turns.body(message)), turns.headers)
        response = connection.getresponse()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {response.read()[:300]!r}")
        payload, elapsed = _streamed(response, started) if stream else (json.loads(response.read()), None)
        elapsed = elapsed or (time.perf_counter() - started) * 1000
        if stream:  # a stream may end its connection (the fake Groq's does): the next request opens a new one
            connection.close()
        if not stream:
            turns.answered(message, payload)
        elif payload.get("session_id"):
            turns.session_id = payload["session_id"]
        if i == warmup:
            measured_from = time.perf_counter() - elapsed / 1000
        if i >= warmup:
            latencies.append(elapsed)
    connection.close()
    return measured_from, time.perf_counter(), latencies


def _streamed(response, started: float) -> tuple[dict, float]:
    """Read a server-sent event stream to its end: its last event, and the ms to its first text."""
    first_text, last = None, {}
    for line in iter(response.fp.readline, b""):
        if not line.startswith(b"data: ") or line.strip() == b"data: [DONE]":
            continue
        last = json.loads(line[6:])
        text = last.get("delta") or (last.get("choices") or [{}])[0].get("delta", {}).get("content")
        if text and first_text is None:
            first_text = (time.perf_counter() - started) * 1000
    response.close()
    return last, first_text


def measure(base_url: str, clients: int, requests: int, warmup: int, api: str = "chat", key: str | None = None,
            stream: bool = False) -> dict:
    """Run the clients in processes; p50, p99 and throughput."""
    host_port = base_url.removeprefix("http://")
    start_at = time.time() + 0.5
    with Pool(clients) as pool:
        per_client = pool.map(client_loop, [(host_port, api, key, requests, warmup, start_at, stream)] * clients)
    # perf_counter is system-wide on Linux, so the clients' clocks compare
    wall = max(end for _, end, _ in per_client) - min(start for start, _, _ in per_client)
    latencies = sorted(ms for _, _, client in per_client for ms in client)
    return {
        "requests": len(latencies),
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 2),
        "requests_per_s": round(len(latencies) / wall, 1),
    }


def start_fake_groq() -> tuple[subprocess.Popen, str]:
    """The fake Groq in its own process, so it does not share a GIL with the clients."""
    process = subprocess.Popen([sys.executable, "-m", "tests.fakes.groq_server"], cwd=ROOT,
                               stdout=subprocess.PIPE, text=True)
    return process, process.stdout.readline().strip()


@contextmanager
def litellm_proxy(groq_url: str, tmp: str):
    """LiteLLM's proxy on a free port, forwarding model "chat" to the fake Groq; yields its URL and key."""
    litellm = LITELLM_VENV / "bin" / "litellm"
    if not litellm.exists():
        subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
        subprocess.run([str(LITELLM_VENV / "bin" / "pip"), "install", "--quiet", "-r", str(LITELLM_REQUIREMENTS)],
                       check=True)
    key = f"sk-bench-{secrets.token_hex(8)}"  # the proxy refuses well-known master keys
    config = Path(tmp) / "litellm.json"  # JSON is YAML
    config.write_text(json.dumps({
        "model_list": [{"model_name": "chat", "litellm_params": {
            "model": "openai/fake-groq-model", "api_base": f"{groq_url}/openai/v1", "api_key": "bench"}}],
        "general_settings": {"master_key": key},
    }))
    port = free_port()
    process = subprocess.Popen(
        [str(litellm), "--config", str(config), "--port", str(port), "--num_workers", "2"],
        env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},  # no fetching the price list
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(f"{url}/health/liveliness", timeout=180, process=process)
        yield url, key
    finally:
        stop(process)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=150, help="per client, after warm-up")
    parser.add_argument("--warmup", type=int, default=15, help="per client")
    parser.add_argument("--rounds", type=int, default=3, help="alternating bare/chat/LiteLLM rounds; medians")
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary folder")
    args = parser.parse_args()

    fake, groq_url = start_fake_groq()
    results: dict[str, list[dict]] = {name: [] for name in (
        "bare", "chat", "chat_metrics_off", "chat_patterns_only", "litellm", "bare_one_client", "chat_one_client",
        "fake_groq_stream_one_client", "chat_stream_one_client")}
    one = max(20, args.requests // 4)  # requests of the one-client rounds
    try:
        with tempfile.TemporaryDirectory() as tmp:
            env = {"GROQ_API_KEY": "bench", "GROQ_BASE_URL": groq_url,
                   "DATABASE_URL": args.database_url or f"sqlite:///{tmp}/bench.db",
                   "LOG_LEVEL": "WARNING", "WEB_CONCURRENCY": "2",
                   "CHAT_RATE_LIMIT": "1000000 per minute"}  # the limiter still runs; the bench is one client
            metered = {**env, "METRICS_TOKEN": "bench"}
            no_model = {**metered, "EMBEDDINGS_DIR": f"{tmp}/no-model",
                        "DATABASE_URL": args.database_url or f"sqlite:///{tmp}/bench-patterns.db"}
            unmetered = {**env, "DATABASE_URL": args.database_url or f"sqlite:///{tmp}/bench-unmetered.db"}
            with gunicorn(env, app="bench.bare_app:app") as bare_url, gunicorn(metered) as chat_url, \
                    gunicorn(unmetered) as unmetered_url, gunicorn(no_model) as patterns_url, \
                    litellm_proxy(groq_url, tmp) as (litellm_url, key):
                for round_ in range(args.rounds):
                    results["bare"].append(measure(bare_url, args.clients, args.requests, args.warmup))
                    metrics_on_off = [("chat", chat_url), ("chat_metrics_off", unmetered_url)]
                    for name, url in metrics_on_off[::-1] if round_ % 2 else metrics_on_off:  # each first in turn
                        results[name].append(measure(url, args.clients, args.requests, args.warmup))
                    results["chat_patterns_only"].append(
                        measure(patterns_url, args.clients, args.requests, args.warmup))
                    results["litellm"].append(measure(litellm_url, args.clients, args.requests, args.warmup,
                                                      "openai", key))
                    results["bare_one_client"].append(measure(bare_url, 1, one, args.warmup))
                    results["chat_one_client"].append(measure(chat_url, 1, one, args.warmup))
                    results["fake_groq_stream_one_client"].append(
                        measure(groq_url, 1, one, args.warmup, "fake_groq", "bench", stream=True))
                    results["chat_stream_one_client"].append(measure(chat_url, 1, one, args.warmup, stream=True))
                rss = {"chat_workers_mb": workers_rss_mb(chat_url), "patterns_only_workers_mb": workers_rss_mb(patterns_url)}
    finally:
        fake.terminate()
        fake.wait()

    summary = {name: {key: statistics.median(run[key] for run in runs) for key in runs[0]}
               for name, runs in results.items()}
    bare, chat, litellm = summary["bare"], summary["chat"], summary["litellm"]
    print(json.dumps({
        "benchmark": "chat_overhead",
        "clients": args.clients,
        "rounds": args.rounds,
        "bare": bare,
        "chat": chat,
        "chat_metrics_off": summary["chat_metrics_off"],
        "chat_patterns_only": summary["chat_patterns_only"],
        "litellm": litellm,
        "p50_overhead_ms": round(chat["p50_ms"] - bare["p50_ms"], 2),
        "p50_ratio": round(chat["p50_ms"] / bare["p50_ms"], 2),
        "p99_ratio": round(chat["p99_ms"] / bare["p99_ms"], 2),
        "throughput_ratio": round(chat["requests_per_s"] / bare["requests_per_s"], 3),
        "metrics_on_vs_off": {"throughput_ratio": round(chat["requests_per_s"]
                                                        / summary["chat_metrics_off"]["requests_per_s"], 3),
                              "p50_ratio": round(chat["p50_ms"] / summary["chat_metrics_off"]["p50_ms"], 3)},
        "vs_litellm": {name: {"throughput_ratio": round(run["requests_per_s"] / litellm["requests_per_s"], 3),
                              "p50_ratio": round(run["p50_ms"] / litellm["p50_ms"], 2)}
                       for name, run in (("chat", chat), ("chat_patterns_only", summary["chat_patterns_only"]))},
        "one_client": {"bare": summary["bare_one_client"], "chat": summary["chat_one_client"],
                       "p50_overhead_ms": round(summary["chat_one_client"]["p50_ms"]
                                                - summary["bare_one_client"]["p50_ms"], 2)},
        "stream_time_to_first_text": {
            "fake_groq_p50_ms": summary["fake_groq_stream_one_client"]["p50_ms"],
            "chat_p50_ms": summary["chat_stream_one_client"]["p50_ms"],
            "added_p50_ms": round(summary["chat_stream_one_client"]["p50_ms"]
                                  - summary["fake_groq_stream_one_client"]["p50_ms"], 2)},
        "rss": rss,
        "goal": {"vs_litellm_throughput_ratio_at_least": 1.2, "one_client_p50_overhead_ms_at_most": 10,
                 "stream_added_p50_ms_at_most": 150, "metrics_on_vs_off_throughput_ratio_at_least": 0.97},
    }, indent=2))


def workers_rss_mb(base_url: str) -> list[float]:
    """The resident memory of each gunicorn worker serving ``base_url`` (found by its PORT), in MB."""
    port = base_url.rsplit(":", 1)[1]
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            environ = (status.parent / "environ").read_bytes().split(b"\0")
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
            cmdline = (status.parent / "cmdline").read_bytes()
            parent = (Path("/proc") / fields["PPid"].strip() / "cmdline").read_bytes()
        except OSError:
            continue  # gone, or not ours
        if f"PORT={port}".encode() in environ and b"gunicorn" in cmdline and b"gunicorn" in parent:
            found.append(round(int(fields["VmRSS"].split()[0]) / 1024, 1))
    return sorted(found)


if __name__ == "__main__":
    main()
