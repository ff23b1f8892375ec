"""Does shadow traffic slow the replies users get? /api/chat with SHADOW_SAMPLE_RATE=0 against =1.

Both servers run gunicorn.conf.py (2 gthread workers) on their own SQLite database, each with
the same active version (random weights of SmolLM2-135M's shape, int8 as served) and the same
fake Groq in its own process, answering every turn with the same two sentences after
--groq-delay seconds, as a hosted model would.
With rate 1 every turn is offered to the worker's local model, which answers one at a time
in the background while the clients go on. The setups alternate, rounds of each; between
rounds the shadowing server is left to finish what it started, so that neither round pays for
the other. Prints JSON: p50, p99 and requests/s of each, the ratios, and how many shadow
replies were kept.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.chat_overhead import measure  # noqa: E402
from bench.train_throughput import build  # noqa: E402
from config import Settings  # noqa: E402
from tests.conftest import opened_registry  # noqa: E402
from tests.servers import gunicorn  # noqa: E402

ADMIN = "bench-admin-token"
REPLY = ("Sleep often comes back with a steady routine: the same bedtime, a wind-down hour without screens, "
         "and getting up at the same time. What does your evening look like now?")


def active_version(database_url: str, model_dir: str, source: Path) -> str:
    """``source`` saved as the active version of this database and folder."""
    import shutil

    settings = Settings(database_url=database_url, model_dir=model_dir)
    with opened_registry(settings) as registry:
        version = registry.save(lambda folder: shutil.copytree(source, folder, dirs_exist_ok=True), {"run_id": None})
        registry.activate(version.name)
    return version.name


def shadow_count(base_url: str) -> int:
    """Shadow replies kept so far."""
    import requests

    return requests.get(f"{base_url}/api/admin/shadow", headers={"Authorization": f"Bearer {ADMIN}"},
                        timeout=30).json()["count"]


def settled(base_url: str, quiet_s: float = 3.0) -> int:
    """Wait until no shadow reply has been kept for ``quiet_s``; the count then."""
    count, since = shadow_count(base_url), time.monotonic()
    while time.monotonic() - since < quiet_s:
        time.sleep(0.5)
        now = shadow_count(base_url)
        if now != count:
            count, since = now, time.monotonic()
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=40, help="per client, after warm-up")
    parser.add_argument("--warmup", type=int, default=5, help="per client")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; medians")
    parser.add_argument("--groq-delay", type=float, default=0.3, help="seconds the fake Groq takes to answer")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="LOCAL_MAX_NEW_TOKENS of a shadow reply")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "smollm2-shape"
        build(model)
        fake = subprocess.Popen([sys.executable, "-m", "tests.fakes.groq_server", "--delay", str(args.groq_delay),
                                 "--text", REPLY], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        groq_url = fake.stdout.readline().strip()
        env = {"GROQ_API_KEY": "bench", "GROQ_BASE_URL": groq_url, "LOG_LEVEL": "WARNING", "WEB_CONCURRENCY": "2",
               "CHAT_RATE_LIMIT": "1000000 per minute", "ADMIN_TOKEN": ADMIN, "MODEL_POLL_SECONDS": "0.5",
               "LOCAL_MAX_NEW_TOKENS": str(args.max_new_tokens)}
        setups = {}
        for name, rate in (("without_shadow", "0"), ("with_shadow", "1")):
            database_url, model_dir = f"sqlite:///{tmp}/{name}.db", f"{tmp}/{name}-models"
            version = active_version(database_url, model_dir, model)
            setups[name] = {**env, "DATABASE_URL": database_url, "MODEL_DIR": model_dir, "SHADOW_SAMPLE_RATE": rate}
        results: dict[str, list[dict]] = {name: [] for name in setups}
        try:
            with gunicorn(setups["without_shadow"]) as plain_url, gunicorn(setups["with_shadow"]) as shadow_url:
                time.sleep(10)  # both workers of the shadowing server load the version
                for _ in range(args.rounds):
                    results["without_shadow"].append(measure(plain_url, args.clients, args.requests, args.warmup))
                    results["with_shadow"].append(measure(shadow_url, args.clients, args.requests, args.warmup))
                    kept = settled(shadow_url)
        finally:
            fake.terminate()
            fake.wait()

    summary = {name: {key: statistics.median(run[key] for run in runs) for key in runs[0]}
               for name, runs in results.items()}
    plain, shadow = summary["without_shadow"], summary["with_shadow"]
    turns = args.rounds * args.clients * (args.requests + args.warmup)
    print(json.dumps({
        "benchmark": "shadow_latency",
        "clients": args.clients, "rounds": args.rounds, "groq_delay_s": args.groq_delay,
        "active_version": version, "shadow_max_new_tokens": args.max_new_tokens,
        "without_shadow": plain, "with_shadow": shadow,
        "p50_ms_per_round": {name: [run["p50_ms"] for run in runs] for name, runs in results.items()},
        "p50_ratio": round(shadow["p50_ms"] / plain["p50_ms"], 3),
        "p99_ratio": round(shadow["p99_ms"] / plain["p99_ms"], 3),
        "throughput_ratio": round(shadow["requests_per_s"] / plain["requests_per_s"], 3),
        "shadow_replies_kept": kept, "turns_offered": turns,
        "goal": "user latency unchanged within noise: ratios near 1",
    }, indent=2))


if __name__ == "__main__":
    main()
