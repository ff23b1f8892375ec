"""Does the service keep answering while clients send their request headers a byte at a time?

For each gunicorn worker setup (gunicorn.conf.py, 2 workers, SQLite, the fake Groq in its own
process): open SLOW sockets that start a request and then send one header byte every 2 s, wait
until they hold whatever they can hold, then time PROBES ordinary chats, each on a new
connection with a 10 s timeout. The same probes without slow sockets are the baseline. Prints
JSON: per setup, the probes answered and their p50 and worst latency, with and without.
"""

from __future__ import annotations

import argparse
import http.client
import json
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.chat_overhead import start_fake_groq  # noqa: E402
from tests.servers import GUNICORN, gunicorn  # noqa: E402

SETUPS = {  # gunicorn options on top of gunicorn.conf.py
    "sync": ["-k", "sync"],
    "gthread_4_threads": ["-k", "gthread", "--threads", "4"],
    "gthread_32_threads": ["-k", "gthread", "--threads", "32"],
    "gthread_64_threads": ["-k", "gthread", "--threads", "64"],
    "gevent": ["-k", "gevent", "--worker-connections", "1000"],
}
TRICKLE_S = 2.0


def trickle(base_url: str, count: int, stop: threading.Event) -> None:
    """``count`` connections that begin a request and never finish its headers."""
    host, port = base_url.removeprefix("http://").split(":")
    sockets = []
    for _ in range(count):
        s = socket.create_connection((host, int(port)))
        s.sendall(b"POST /api/chat HTTP/1.1\r\nHost: bench\r\n")
        sockets.append(s)
    while not stop.wait(TRICKLE_S):
        for s in sockets:
            try:
                s.sendall(b"x")
            except OSError:  # the server gave up on this one
                pass
    for s in sockets:
        s.close()


def probe(base_url: str, count: int) -> dict:
    """``count`` chats one after another, each on its own connection; what answered and how fast."""
    host, port = base_url.removeprefix("http://").split(":")
    latencies, failed = [], 0
    for i in range(count):
        started = time.perf_counter()
        try:
            connection = http.client.HTTPConnection(host, int(port), timeout=10)
            connection.request("POST", "/api/chat", json.dumps({"message": f"probe {i}"}),
                               {"Content-Type": "application/json"})
            answered = connection.getresponse().status == 200
            connection.close()
        except OSError:
            answered = False
        if answered:
            latencies.append((time.perf_counter() - started) * 1000)
        else:
            failed += 1
    return {"answered": len(latencies), "failed": failed,
            "p50_ms": round(statistics.median(latencies), 1) if latencies else None,
            "worst_ms": round(max(latencies), 1) if latencies else None}


def measure(options: list[str], env: dict, slow: int, probes: int) -> dict:
    """Baseline probes, then probes while ``slow`` sockets trickle."""
    command = [str(GUNICORN), "-c", "gunicorn.conf.py", *options, "api:app"]
    with gunicorn(env, command=command) as base_url:
        quiet = probe(base_url, probes)
        stop = threading.Event()
        trickler = threading.Thread(target=trickle, args=(base_url, slow, stop), daemon=True)
        trickler.start()
        time.sleep(3 * TRICKLE_S)  # every slow socket has sent bytes and holds what it can
        under_attack = probe(base_url, probes)
        stop.set()
        trickler.join()
    return {"quiet": quiet, "with_slow_sockets": under_attack}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--slow", type=int, default=50, help="slow sockets")
    parser.add_argument("--probes", type=int, default=20)
    parser.add_argument("--setups", default=",".join(SETUPS), help=f"comma-separated, from: {', '.join(SETUPS)}")
    args = parser.parse_args()

    fake, groq_url = start_fake_groq()
    results = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for name in args.setups.split(","):
                env = {"GROQ_API_KEY": "bench", "GROQ_BASE_URL": groq_url, "DATABASE_URL": f"sqlite:///{tmp}/{name}.db",
                       "LOG_LEVEL": "WARNING", "WEB_CONCURRENCY": "2", "CHAT_RATE_LIMIT": "1000000 per minute"}
                results[name] = measure(SETUPS[name], env, args.slow, args.probes)
    finally:
        fake.terminate()
        fake.wait()
    print(json.dumps({"benchmark": "slow_clients", "slow_sockets": args.slow, "probes": args.probes,
                      "trickle_s": TRICKLE_S, "setups": results}, indent=2))


if __name__ == "__main__":
    main()
