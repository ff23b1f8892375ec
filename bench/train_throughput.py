"""The project's trainer against TRL's SFTTrainer, on SmolLM2-135M's shape.

Random weights with SmolLM2-135M's architecture (DESIGN.md), a locally trained
tokenizer, and synthetic conversations of varied length. Both sides train the
same LoRA (r=16, all linear layers) with the same precision and learning rate on
the same tokens, one epoch; TRL with its defaults (loss on the completion only;
gradient checkpointing; batches of 4). Each side
runs in its own process so its peak RSS is its own, in alternating rounds. TRL
is not a project dependency: `pip install -r bench/requirements-trl.txt` first.
TRAIN_* flags in the environment apply to both sides where they mean something to
TRL (LoRA, learning rate, sequence length) and to ours (TRAIN_MEMORY_MB…).
Prints JSON: supervised tokens/s and peak RSS of each (medians), and ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from importlib.metadata import version as package_version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SMOLLM2_135M = {"hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9,
                "num_key_value_heads": 3, "max_position_embeddings": 2048}
SMOLLM2_VOCAB = 49152
WORDS = ("feel sleep anxious week work family breathe slowly today night worry talk help walk rest friend "
         "therapy plan small step notice thought body calm heavy tired morning evening listen support").split()


def conversations(count: int, seed: int) -> list[list[dict]]:
    """Chat examples whose turns vary in length the way logged conversations do."""
    rng = random.Random(seed)

    def text(low: int, high: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high))).capitalize() + "."

    examples = []
    for _ in range(count):
        messages = [{"role": "system", "content": text(20, 40)}]
        for _ in range(rng.choice((0, 0, 1, 1, 2, 3))):
            messages += [{"role": "user", "content": text(5, 40)}, {"role": "assistant", "content": text(20, 90)}]
        messages += [{"role": "user", "content": text(5, 60)}, {"role": "assistant", "content": text(15, 160)}]
        examples.append(messages)
    return examples


def build(folder: Path) -> None:
    """SmolLM2-135M's shape with random weights, and a tokenizer trained on the bench's words."""
    from tests.fakes.tiny_model import build_model, build_tokenizer

    build_model(folder, build_tokenizer(vocab_size=2000), vocab_size=SMOLLM2_VOCAB, **SMOLLM2_135M)


def features(folder: Path, count: int, max_len: int):
    """The tokenizer and the examples, rendered the project's way."""
    from transformers import AutoTokenizer

    from trainer.tokens import render

    tokenizer = AutoTokenizer.from_pretrained(folder)
    return tokenizer, [render(tokenizer, m, max_len) for m in conversations(count, seed=7)]


def train_settings():
    """The TRAIN_* flags from the environment (TRAIN_MEMORY_MB, TRAIN_BATCH_TOKENS…), one epoch."""
    from config import Settings

    return replace(Settings.from_env(os.environ).train, epochs=1)


def run_ours(folder: Path, count: int) -> dict:
    """trainer.finetune.train with its defaults, one epoch."""
    from hardware import set_torch_threads
    from trainer.finetune import load_base, train, wrap_for_training

    settings = train_settings()
    set_torch_threads(settings.threads)
    tokenizer, examples = features(folder, count, settings.max_seq_len)
    _, model = load_base(str(folder))
    model = wrap_for_training(model, settings)
    result = train(model, examples, tokenizer.pad_token_id, settings)
    return {"supervised_tokens": result.supervised_tokens, "seconds": result.seconds, "steps": result.steps}


def run_trl(folder: Path, count: int) -> dict:
    """TRL's SFTTrainer with its defaults: completion-only loss, gradient checkpointing, bf16, batches
    of 4 padded to their longest; the same LoRA, learning rate and tokens.

    The examples go in tokenised, with a completion mask (TRL's processed-dataset form), exactly as
    the project's trainer sees them. Given the raw prompt-completion conversations instead, TRL's
    truncation at max_length keeps each example's start: it dropped 21 of the 48 examples whose
    prompt filled the window and cut the replies of others, training on 4,800 supervised tokens of
    the 11,186 the project's trainer learns from. Supervised tokens are counted from what TRL
    prepared, as the project's trainer counts its own.
    """
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    from hardware import set_torch_threads, use_bf16
    from trainer.finetune import load_base
    from trainer.tokens import IGNORE, Features

    settings = train_settings()
    set_torch_threads(settings.threads)
    tokenizer, examples = features(folder, count, settings.max_seq_len)
    rows = [{"input_ids": f.input_ids, "completion_mask": [int(label != IGNORE) for label in f.labels]}
            for f in examples]
    _, model = load_base(str(folder))
    args = SFTConfig(
        output_dir=tempfile.mkdtemp(), per_device_train_batch_size=4, num_train_epochs=1,
        max_length=settings.max_seq_len, learning_rate=settings.learning_rate, bf16=use_bf16(settings.bf16),
        use_cpu=True, report_to=[], save_strategy="no", logging_strategy="no", dataloader_num_workers=0,
        seed=settings.seed, completion_only_loss=True,  # TRL applies it by default to prompt-completion data only
    )
    lora = LoraConfig(r=settings.lora_r, lora_alpha=settings.lora_alpha, lora_dropout=settings.lora_dropout,
                      target_modules="all-linear", task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                         peft_config=lora)
    started = time.monotonic()
    trainer.train()
    seconds = time.monotonic() - started
    prepared = trainer.train_dataset
    supervised = sum(Features(ids, labels).supervised for ids, labels in zip(prepared["input_ids"], prepared["labels"]))
    return {"supervised_tokens": supervised, "seconds": seconds, "steps": trainer.state.global_step}


def child(kind: str, folder: Path, count: int) -> None:
    """One side, in this process; prints its figures as JSON."""
    figures = (run_ours if kind == "ours" else run_trl)(folder, count)
    figures["tokens_per_s"] = round(figures["supervised_tokens"] / figures["seconds"], 1)
    figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(json.dumps(figures))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--examples", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of both sides")
    parser.add_argument("--side", choices=("ours", "trl"), help=argparse.SUPPRESS)
    parser.add_argument("--model", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        return child(args.side, args.model, args.examples)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "smollm2-135m-shape"
        build(folder)
        results = {"trl": [], "ours": []}
        for round_ in range(args.rounds):
            for side in ("trl", "ours") if round_ % 2 == 0 else ("ours", "trl"):
                out = subprocess.run([sys.executable, __file__, "--side", side, "--model", str(folder),
                                      "--examples", str(args.examples)], stdout=subprocess.PIPE, text=True, check=True)
                results[side].append(json.loads(out.stdout.strip().splitlines()[-1]))
    trl, ours = (_median(results[side]) for side in ("trl", "ours"))
    print(json.dumps({
        "benchmark": "train_throughput", "examples": args.examples, "rounds": args.rounds,
        "model": "SmolLM2-135M shape, random weights", "trl_version": package_version("trl"),
        "trl": trl, "ours": ours, "runs": results,
        "throughput_ratio": round(ours["tokens_per_s"] / trl["tokens_per_s"], 2),
        "peak_rss_ratio": round(ours["peak_rss_mb"] / trl["peak_rss_mb"], 2),
        "goal": {"throughput_ratio_at_least": 1.3, "peak_rss_ratio_at_most": 0.6},
    }, indent=2))


def _median(runs: list[dict]) -> dict:
    """Each figure's median over the rounds."""
    return {name: statistics.median(run[name] for run in runs) for name in ("tokens_per_s", "peak_rss_mb")}


if __name__ == "__main__":
    main()
