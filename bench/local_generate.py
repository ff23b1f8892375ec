"""Local replies for many patients at once: the LocalProvider's batched decoding against a single stream, against
the decode loop every reply ran alone before batching, and against CTranslate2, on SmolLM2-135M's shape.

Random weights with SmolLM2-135M's architecture (DESIGN.md), a locally trained tokenizer, one conversation of
about 200 prompt tokens, greedy, 64 new tokens, int8 linear layers on every side, LOCAL_THREADS torch threads
(--threads, 1 by default: on a shared 2-core machine a second thread mostly waits at torch's barriers). Sides:
- today: the decode loop as it was before batching (one KV cache, no mask, no thread hand-off), one reply at a time;
- single: the LocalProvider streaming one reply at a time, as the chat endpoint consumes it;
- concurrent: the LocalProvider with 8 clients streaming, each starting its next reply when one ends. First all
  8 start together (a burst: aggregate tokens/s, the issue's figure, and the p95 time to first token when 8
  prompts arrive at once, each prefilled in turn); then the clients start spread over one reply's time, as
  patients' messages arrive (the p95 time to first token the goal is about, and tokens/s again);
- ctranslate2_single, ctranslate2_batch: CTranslate2 (PyPI, installed on first run into .cache/ctranslate2-venv
  from bench/requirements-ctranslate2.txt) with the model converted to int8, one reply, and 8 in one call.
Each side runs in a fresh process, the sides alternating round by round; medians. Tokens/s counts the whole reply,
prefill included. Peak RSS is the concurrent side's ru_maxrss (a worker serving 8 streams), beside its RSS once
they are done. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.train_throughput import build, conversations  # noqa: E402
from hardware import cpu_quota  # noqa: E402

CT2_VENV = ROOT / ".cache" / "ctranslate2-venv"
CT2_REQUIREMENTS = ROOT / "bench" / "requirements-ctranslate2.txt"
CLIENTS = 8


def conversation(tokenizer, prompt_tokens: int) -> list[dict]:
    """A chat whose templated prompt is about ``prompt_tokens`` long."""
    for candidate in conversations(200, seed=3):
        messages = candidate[:-1]  # end on the user's turn
        length = len(tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)["input_ids"])
        if abs(length - prompt_tokens) <= 20:
            return messages
    raise RuntimeError("no sample conversation has the wanted length")


def today_reply(loaded, messages: list[dict]) -> dict:
    """The decode loop each reply ran alone before batching, kept here as the baseline."""
    import torch
    from transformers import DynamicCache

    started = time.perf_counter()
    ids = loaded.prompt(messages)
    cache, seen, step_input, first, tokens = DynamicCache(config=loaded.model.config), ids, ids, None, 0
    for _ in range(loaded.settings.max_new_tokens):
        with torch.inference_mode():
            logits = loaded.model(input_ids=step_input, past_key_values=cache, use_cache=True,
                                  logits_to_keep=1).logits[:, -1].float()
        token = loaded.pick(seen, logits)
        first = first or time.perf_counter()
        if token in loaded.eos:
            break
        tokens += 1
        step_input = torch.tensor([[token]])
        seen = torch.cat([seen, step_input], dim=1)
    return {"tokens": tokens, "seconds": time.perf_counter() - started, "ttft_s": first - started,
            "started": started}


def local_reply(local, messages: list[dict]) -> dict:
    """A streamed reply through the LocalProvider; ``stream()`` returns once the first token exists."""
    started = time.perf_counter()
    stream = local.stream(messages)
    first = time.perf_counter()
    for _ in stream:
        pass
    stream.close()
    return {"tokens": stream.completion.completion_tokens, "seconds": time.perf_counter() - started,
            "ttft_s": first - started, "started": started}


def provider(folder: Path, models: str, new_tokens: int, threads: int):
    """A LocalProvider serving the saved model, once it is loaded."""
    from assistant.local_provider import LocalProvider
    from config import LocalSettings
    from registry.registry import Registry
    from storage.migrate import migrated_engine

    registry = Registry(models, migrated_engine(f"sqlite:///{models}/bench.db"))
    version = registry.save(lambda out: shutil.copytree(folder, out, dirs_exist_ok=True), {"gate": {"passed": True}})
    registry.activate(version.name)
    local = LocalProvider(registry, LocalSettings(temperature=0.0, repetition_penalty=1.0, max_new_tokens=new_tokens,
                                                  timeout=600, poll_seconds=3600, threads=threads))
    while local.loaded is None:
        assert local.load_error is None, local.load_error
        time.sleep(0.1)
    return local


def concurrent(local, messages: list[dict], repeats: int, stagger_s: float) -> dict:
    """CLIENTS clients streaming ``repeats`` replies each, back to back; client i starts after i * ``stagger_s``."""
    replies: list[list[dict]] = [[] for _ in range(CLIENTS)]

    def client(i: int) -> None:
        time.sleep(i * stagger_s)
        replies[i].extend(local_reply(local, messages) for _ in range(repeats))

    clients = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    started = time.perf_counter()
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join()
    every = [r for mine in replies for r in mine]
    return {"tokens": sum(r["tokens"] for r in every),
            "tokens_per_s": sum(r["tokens"] for r in every) / (time.perf_counter() - started),
            "ttft_p95_s": percentile([r["ttft_s"] for r in every], 95),
            "reply_s": statistics.mean(r["seconds"] for r in every)}


def percentile(values: list[float], p: int) -> float:
    """The p-th percentile, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def run_side(side: str, folder: Path, messages: list[dict], new_tokens: int, repeats: int, threads: int) -> dict:
    """One of the project's sides in this process: a warm-up, then its figures."""
    with tempfile.TemporaryDirectory() as models:
        local = provider(folder, models, new_tokens, threads)
        if side == "today":
            from hardware import set_torch_threads

            set_torch_threads(threads)  # on this thread, as the provider's torch thread does
            run = lambda: today_reply(local.loaded, messages)  # noqa: E731
        else:
            run = lambda: local_reply(local, messages)  # noqa: E731
        run()  # warm-up: first calls allocate and fill caches
        if side == "concurrent":  # all arriving at once, then spread over a reply's time
            burst = concurrent(local, messages, repeats, 0.0)
            spread = concurrent(local, messages, repeats, burst["reply_s"] / CLIENTS)
            result = {"tokens": burst["tokens"], "tokens_per_s": burst["tokens_per_s"],
                      "ttft_p95_burst_s": burst["ttft_p95_s"], "ttft_p95_s": spread["ttft_p95_s"],
                      "tokens_per_s_spread": spread["tokens_per_s"],
                      "largest_batch": local.status()["batching"]["largest_batch"]}
        else:
            results = [run() for _ in range(repeats)]
            result = {"tokens": statistics.median(r["tokens"] for r in results),
                      "tokens_per_s": statistics.median(r["tokens"] / r["seconds"] for r in results),
                      "ttft_s": statistics.median(r["ttft_s"] for r in results)}
        local.close()
    return {**result, "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "rss_after_mb": rss_mb()}


def rss_mb() -> int:
    """This process's resident memory now (the peak is reached while loading: quantising copies the fp32 model)."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return round(int(fields["VmRSS"].split()[0]) / 1024)


def ctranslate2_model(folder: Path, out: Path) -> Path:
    """The bench model converted to int8 by CTranslate2 in its own venv (made on first run)."""
    python = CT2_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(CT2_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-r", str(CT2_REQUIREMENTS)], check=True)
    site = next(p for p in sys.path if p.endswith("site-packages"))
    subprocess.run([str(python), str(ROOT / "bench" / "ctranslate2_side.py"), "--model", str(folder),
                    "--convert", str(out), "--project-site", site], check=True, capture_output=True)
    return out


def child(command: list[str]) -> dict:
    """A side's process, and the JSON line it printed last."""
    done = subprocess.run(command, capture_output=True, text=True, check=True, env={**os.environ,
                                                                                    "TOKENIZERS_PARALLELISM": "false"})
    return json.loads(done.stdout.strip().splitlines()[-1])


SIDES = ("today", "single", "concurrent", "ctranslate2_single", "ctranslate2_batch")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="processes per side, alternating between sides")
    parser.add_argument("--repeats", type=int, default=2, help="replies measured per process (per client)")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--prompt-tokens", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1, help="torch (and CTranslate2) threads; 0: the CPU quota")
    parser.add_argument("--no-ctranslate2", action="store_true", help="leave CTranslate2's sides out")
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    from transformers import AutoTokenizer

    if args.side:  # a child: one side, one JSON line
        messages = conversation(AutoTokenizer.from_pretrained(args.folder), args.prompt_tokens)
        print(json.dumps(run_side(args.side, args.folder, messages, args.new_tokens, args.repeats, args.threads)))
        return
    sides = SIDES[:3] if args.no_ctranslate2 else SIDES
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "smollm2-shape"
        build(folder)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        ids = tokenizer.apply_chat_template(conversation(tokenizer, args.prompt_tokens), add_generation_prompt=True,
                                            return_dict=True)["input_ids"]
        ct2 = None if args.no_ctranslate2 else ctranslate2_model(folder, Path(tmp) / "ct2")
        common = ["--repeats", str(args.repeats), "--new-tokens", str(args.new_tokens), "--threads", str(args.threads)]
        commands = {side: [sys.executable, __file__, "--side", side, "--folder", str(folder),
                           "--prompt-tokens", str(args.prompt_tokens), *common] for side in SIDES[:3]}
        for side, batch in (("ctranslate2_single", 1), ("ctranslate2_batch", CLIENTS)):
            commands[side] = [str(CT2_VENV / "bin" / "python"), str(ROOT / "bench" / "ctranslate2_side.py"),
                              "--model", str(ct2), "--prompt", json.dumps(tokenizer.convert_ids_to_tokens(ids)),
                              "--batch", str(batch), *common]
        results = {side: [] for side in sides}
        for _ in range(args.rounds):
            for side in sides:
                results[side].append(child(commands[side]))
    print(json.dumps(summary(results, args, len(ids)), indent=2))


def summary(results: dict, args, prompt_tokens: int) -> dict:
    """Medians per side, and the issue's goals as ratios measured in this run."""
    sides = {side: {key: round(statistics.median(r[key] for r in rounds), 3) for key in rounds[0]}
             for side, rounds in results.items()}
    single, together = sides["single"], sides["concurrent"]
    ratios = {"concurrent_vs_single_tokens_per_s": together["tokens_per_s"] / single["tokens_per_s"],
              "single_vs_today_tokens_per_s": single["tokens_per_s"] / sides["today"]["tokens_per_s"],
              "concurrent_p95_ttft_vs_single": together["ttft_p95_s"] / single["ttft_s"],
              "burst_p95_ttft_vs_single": together["ttft_p95_burst_s"] / single["ttft_s"]}
    if "ctranslate2_batch" in sides:
        ratios["concurrent_vs_ctranslate2_batch_tokens_per_s"] = (together["tokens_per_s"]
                                                                  / sides["ctranslate2_batch"]["tokens_per_s"])
    return {"shape": "SmolLM2-135M (random weights), int8", "cpu_threads": cpu_quota(), "torch_threads": args.threads,
            "rounds": args.rounds, "repeats": args.repeats, "clients": CLIENTS, "prompt_tokens": prompt_tokens,
            "new_tokens": args.new_tokens, **sides, "ratios": {k: round(v, 2) for k, v in ratios.items()},
            "peak_rss_mb_per_worker": together["peak_rss_mb"], "rss_mb_per_worker_after_8_streams":
            together["rss_after_mb"],
            "goals": {"concurrent_vs_single_tokens_per_s": ">= 2.5", "concurrent_vs_ctranslate2_batch_tokens_per_s":
                      ">= 1.2", "single_vs_today_tokens_per_s": ">= 0.95", "concurrent_p95_ttft_vs_single": "<= 3"}}


if __name__ == "__main__":
    main()
