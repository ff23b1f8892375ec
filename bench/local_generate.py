"""The local provider against plain `model.generate`, on SmolLM2-135M's shape.

Random weights with SmolLM2-135M's architecture (DESIGN.md), a locally trained
tokenizer, one conversation of about 200 prompt tokens. Each side answers it with
greedy decoding: plain generate with default settings (fp32, dynamic cache), and
the project's LocalProvider (int8 linear layers, its own decode loop), plus the
provider with LOCAL_QUANTIZE=0 to show what the loop alone gives. Rounds
alternate between the sides, each side in a fresh process; medians are reported. Prints JSON: tokens/s and time
to first token of each, and ratios against plain generate.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.train_throughput import build, conversations  # noqa: E402
from hardware import cpu_quota  # noqa: E402


def conversation(tokenizer, prompt_tokens: int) -> list[dict]:
    """A chat whose templated prompt is about ``prompt_tokens`` long."""
    for candidate in conversations(200, seed=3):
        messages = candidate[:-1]  # end on the user's turn
        length = len(tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)["input_ids"])
        if abs(length - prompt_tokens) <= 20:
            return messages
    raise RuntimeError("no sample conversation has the wanted length")


def plain_generate(model, tokenizer, messages: list[dict], new_tokens: int) -> dict:
    """`model.generate` as its documentation shows it; time to first token from a one-token call."""
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    started = time.perf_counter()
    model.generate(**inputs, max_new_tokens=1)
    ttft = time.perf_counter() - started
    started = time.perf_counter()
    output = model.generate(**inputs, max_new_tokens=new_tokens)
    seconds = time.perf_counter() - started
    generated = output.shape[1] - inputs["input_ids"].shape[1]
    return {"tokens": generated, "tokens_per_s": generated / seconds, "ttft_s": ttft}


def local_reply(local, messages: list[dict]) -> dict:
    """A streamed reply through the LocalProvider, as the chat endpoint consumes it.

    ``stream()`` returns once the first token exists (so that a failure can still fall
    back to Groq): that moment is the time to first token. The bench tokenizer is smaller
    than the model's vocabulary, so deltas cannot be timed: many random tokens decode to ''.
    """
    started = time.perf_counter()
    stream = local.stream(messages)
    first = time.perf_counter()
    for _ in stream:
        pass
    stream.close()
    ended = time.perf_counter()
    tokens = stream.completion.completion_tokens
    return {"tokens": tokens, "tokens_per_s": tokens / (ended - started), "ttft_s": first - started}


def run_side(side: str, folder: Path, messages: list[dict], new_tokens: int, repeats: int) -> dict:
    """One side in this process: load, warm up, then the median of ``repeats`` replies."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from assistant.local_provider import LocalProvider
    from config import LocalSettings
    from hardware import set_torch_threads
    from registry.registry import Registry
    from storage.migrate import migrated_engine

    if side == "plain_generate":
        set_torch_threads(0)
        model, tokenizer = AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)
        run = lambda: plain_generate(model, tokenizer, messages, new_tokens)  # noqa: E731
    else:
        with tempfile.TemporaryDirectory() as models:
            registry = Registry(models, migrated_engine(f"sqlite:///{models}/bench.db"))
            version = registry.save(lambda out: shutil.copytree(folder, out, dirs_exist_ok=True),
                                    {"gate": {"passed": True}})
            registry.activate(version.name)
            local = LocalProvider(registry, LocalSettings(
                quantize=side == "local_provider", temperature=0.0, repetition_penalty=1.0,
                max_new_tokens=new_tokens, timeout=600, poll_seconds=3600))
            while local.loaded is None:
                assert local.load_error is None, local.load_error
                time.sleep(0.1)
        run = lambda: local_reply(local, messages)  # noqa: E731
    run()  # warm-up: first calls allocate and fill caches
    results = [run() for _ in range(repeats)]
    return {key: statistics.median(r[key] for r in results) for key in ("tokens", "tokens_per_s", "ttft_s")}


SIDES = ("plain_generate", "local_provider", "local_provider_fp32")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="processes per side, alternating between sides")
    parser.add_argument("--repeats", type=int, default=2, help="replies measured per process")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--prompt-tokens", type=int, default=200)
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--folder", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    from transformers import AutoTokenizer

    if args.side:  # a child: one side, one JSON line
        messages = conversation(AutoTokenizer.from_pretrained(args.folder), args.prompt_tokens)
        print(json.dumps(run_side(args.side, args.folder, messages, args.new_tokens, args.repeats)))
        return
    # Each side in processes of its own: torch's thread pools and allocator state would otherwise mix.
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "smollm2-shape"
        build(folder)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        prompt_tokens = len(tokenizer.apply_chat_template(conversation(tokenizer, args.prompt_tokens),
                                                          add_generation_prompt=True, return_dict=True)["input_ids"])
        results = {side: [] for side in SIDES}
        for _ in range(args.rounds):
            for side in SIDES:
                child = subprocess.run([sys.executable, __file__, "--side", side, "--folder", str(folder),
                                        "--repeats", str(args.repeats), "--new-tokens", str(args.new_tokens),
                                        "--prompt-tokens", str(args.prompt_tokens)],
                                       capture_output=True, text=True, check=True)
                results[side].append(json.loads(child.stdout.strip().splitlines()[-1]))

    summary = {side: {key: round(statistics.median(r[key] for r in rounds), 3)
                      for key in ("tokens", "tokens_per_s", "ttft_s")} for side, rounds in results.items()}
    base = summary["plain_generate"]
    print(json.dumps({
        "shape": "SmolLM2-135M (random weights)", "cpu_threads": cpu_quota(), "rounds": args.rounds,
        "repeats": args.repeats, "prompt_tokens": prompt_tokens, "new_tokens": args.new_tokens, **summary,
        "ratios": {side: {"tokens_per_s": round(s["tokens_per_s"] / base["tokens_per_s"], 2),
                          "ttft": round(s["ttft_s"] / base["ttft_s"], 2)}
                   for side, s in summary.items() if side != "plain_generate"},
        "goal": "local_provider tokens/s >= 1.5x plain_generate",
    }, indent=2))


if __name__ == "__main__":
    main()
