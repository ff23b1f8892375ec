"""How to decode 8 replies at once on SmolLM2-135M's shape, int8 as served: padded rows in one batched forward
per step, or a KV cache per reply stepped one after another.

Random weights with SmolLM2-135M's architecture, prompts of about 200 tokens that differ in length (so the batched
side pads them on the left and masks the padding), greedy, 64 new tokens. Each layout decodes the same 8 prompts;
a single reply alone is the baseline. Rounds alternate between the layouts in one process. Prints JSON: decode
tokens/s (aggregate over the 8 replies, prefill excluded) of each, and their ratio to a reply alone.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from transformers import AutoModelForCausalLM, DynamicCache  # noqa: E402

from assistant.local_model import quantized  # noqa: E402
from bench.train_throughput import build  # noqa: E402
from hardware import cpu_quota, set_torch_threads  # noqa: E402


def prompts(count: int, length: int, vocab: int) -> list[torch.Tensor]:
    """``count`` random prompts whose lengths spread ±10% around ``length``."""
    generator = torch.Generator().manual_seed(0)
    return [torch.randint(vocab, (1, length - length // 10 + i * length // (5 * count)), generator=generator)
            for i in range(count)]


@torch.inference_mode()
def padded(model, ids: list[torch.Tensor], new_tokens: int) -> float:
    """Left-padded prompts in one batched cache, one forward per step for all rows: seconds decoding."""
    width = max(p.shape[1] for p in ids)
    mask = torch.stack([torch.cat([torch.zeros(width - p.shape[1], dtype=torch.long), torch.ones(p.shape[1],
                                                                                                   dtype=torch.long)])
                        for p in ids])
    batch = torch.stack([torch.cat([torch.zeros(width - p.shape[1], dtype=torch.long), p[0]]) for p in ids])
    cache = DynamicCache(config=model.config)
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    logits = model(input_ids=batch, attention_mask=mask, position_ids=positions, past_key_values=cache,
                   logits_to_keep=1).logits[:, -1]
    started = time.perf_counter()
    for _ in range(new_tokens):
        token = logits.argmax(-1, keepdim=True)
        mask = torch.cat([mask, torch.ones(len(ids), 1, dtype=torch.long)], dim=1)
        positions = mask.sum(1, keepdim=True) - 1
        logits = model(input_ids=token, attention_mask=mask, position_ids=positions, past_key_values=cache,
                       logits_to_keep=1).logits[:, -1]
    return time.perf_counter() - started


@torch.inference_mode()
def separate(model, ids: list[torch.Tensor], new_tokens: int) -> float:
    """A cache per prompt, each stepped in turn (batch size one), as today's loop does: seconds decoding."""
    caches = [DynamicCache(config=model.config) for _ in ids]
    logits = [model(input_ids=p, past_key_values=c, logits_to_keep=1).logits[:, -1] for p, c in zip(ids, caches)]
    started = time.perf_counter()
    for _ in range(new_tokens):
        logits = [model(input_ids=step.argmax(-1, keepdim=True), past_key_values=c, logits_to_keep=1).logits[:, -1]
                  for step, c in zip(logits, caches)]
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--prompt-tokens", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (LOCAL_THREADS); 0: the CPU quota")
    args = parser.parse_args()
    threads = set_torch_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        build(Path(tmp))
        model = quantized(AutoModelForCausalLM.from_pretrained(tmp).eval())
    ids = prompts(args.batch, args.prompt_tokens, model.config.vocab_size)
    layouts = {"alone": lambda: padded(model, ids[:1], args.new_tokens),
               "padded_batch": lambda: padded(model, ids, args.new_tokens),
               "separate_caches": lambda: separate(model, ids, args.new_tokens)}
    for run in layouts.values():  # warm-up
        run()
    seconds = {name: [] for name in layouts}
    for _ in range(args.rounds):
        for name, run in layouts.items():
            seconds[name].append(run())
    rows = {"alone": 1, "padded_batch": args.batch, "separate_caches": args.batch}
    rate = {name: round(rows[name] * args.new_tokens / statistics.median(s), 1) for name, s in seconds.items()}
    print(json.dumps({"shape": "SmolLM2-135M (random weights), int8", "cpu_threads": cpu_quota(),
                      "torch_threads": threads, "rounds": args.rounds, "batch": args.batch,
                      "new_tokens": args.new_tokens, "tokens_per_s": rate,
                      "vs_alone": {name: round(r / rate["alone"], 2) for name, r in rate.items()}}, indent=2))


if __name__ == "__main__":
    main()
