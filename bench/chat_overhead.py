"""How much /api/chat adds over a bare Flask JSON endpoint under the same gunicorn.

Both run with gunicorn.conf.py (2 gthread workers); chat talks to the fake Groq
(no delay) in its own process and logs to SQLite. 16 clients on keep-alive
connections each continue their own conversation. Prints JSON: p50, p99 and
requests/s of each, and chat against bare as ratios.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import subprocess
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers import gunicorn  # noqa: E402


def client_loop(args: tuple[str, int, int, float]) -> tuple[float, float, list[float]]:
    """One client: `requests` chats on one connection; when it measured, and latencies in ms."""
    host_port, requests, warmup, start_at = args
    host, port = host_port.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    session_id, latencies = None, []
    while time.time() < start_at:
        time.sleep(0.001)
    for i in range(warmup + requests):
        body = {"message": f"how do I sleep better, try {i}"}
        if session_id:
            body["session_id"] = session_id
        started = time.perf_counter()
        connection.request("POST", "/api/chat", json.dumps(body), {"Content-Type": "application/json"})
        response = connection.getresponse()
        payload = json.loads(response.read())
        elapsed = (time.perf_counter() - started) * 1000
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {payload}")
        session_id = payload["session_id"]
        if i == warmup:
            measured_from = time.perf_counter() - elapsed / 1000
        if i >= warmup:
            latencies.append(elapsed)
    connection.close()
    return measured_from, time.perf_counter(), latencies


def measure(base_url: str, clients: int, requests: int, warmup: int) -> dict:
    """Run the clients in processes of threads; p50, p99 and throughput."""
    host_port = base_url.removeprefix("http://")
    start_at = time.time() + 0.5
    with Pool(clients) as pool:
        per_client = pool.map(client_loop, [(host_port, requests, warmup, start_at)] * clients)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=150, help="per client, after warm-up")
    parser.add_argument("--warmup", type=int, default=15, help="per client")
    parser.add_argument("--rounds", type=int, default=3, help="alternating bare/chat rounds; medians are reported")
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary folder")
    args = parser.parse_args()

    fake, groq_url = start_fake_groq()
    results: dict[str, list[dict]] = {"bare": [], "chat": []}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            env = {"GROQ_API_KEY": "bench", "GROQ_BASE_URL": groq_url, "DATABASE_URL": args.database_url or f"sqlite:///{tmp}/bench.db",
                   "LOG_LEVEL": "WARNING", "WEB_CONCURRENCY": "2",
                   "CHAT_RATE_LIMIT": "1000000 per minute"}  # the limiter still runs; the bench is one client
            with gunicorn(env, app="bench.bare_app:app") as bare_url, gunicorn(env) as chat_url:
                for _ in range(args.rounds):
                    results["bare"].append(measure(bare_url, args.clients, args.requests, args.warmup))
                    results["chat"].append(measure(chat_url, args.clients, args.requests, args.warmup))
    finally:
        fake.terminate()
        fake.wait()

    summary = {name: {key: statistics.median(run[key] for run in runs) for key in runs[0]}
               for name, runs in results.items()}
    bare, chat = summary["bare"], summary["chat"]
    print(json.dumps({
        "benchmark": "chat_overhead",
        "clients": args.clients,
        "rounds": args.rounds,
        "bare": bare,
        "chat": chat,
        "p50_overhead_ms": round(chat["p50_ms"] - bare["p50_ms"], 2),
        "p50_ratio": round(chat["p50_ms"] / bare["p50_ms"], 2),
        "p99_ratio": round(chat["p99_ms"] / bare["p99_ms"], 2),
        "throughput_ratio": round(chat["requests_per_s"] / bare["requests_per_s"], 3),
        "goal": {"p50_overhead_ms_at_most": 3, "throughput_ratio_at_least": 0.6},
    }, indent=2))


if __name__ == "__main__":
    main()
