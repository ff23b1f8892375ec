"""Would fine-tuning MiniLM for the task beat the linear semantic layer? Measured on the dev split.

Fine-tunes all-MiniLM-L6-v2 end to end (mean pooling, a linear head, class-balanced
cross-entropy, AdamW with warm-up and linear decay) on the same train rows the message
classifier learns from, then prints JSON: for each high-risk recall target on dev, the
lowest share of hard negatives screened high, for the patterns with the shipped linear
classifier, with the fine-tuned model, and with their average. A message counts as high
when the patterns say so or P(high) of the message alone or with its context passes a
threshold (as `bench/safety_eval.py --tune` counts). Needs torch (requirements-training.txt).
About 30 s an epoch on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant.safety import labelled  # noqa: E402
from assistant.safety.patterns import HIGH, risk_level  # noqa: E402
from assistant.safety.screener import LEVELS, Screener  # noqa: E402
from config import Settings  # noqa: E402
from embeddings.model import bundled_model_dir  # noqa: E402

TARGETS = (0.95, 0.96, 0.97, 0.98)
BATCH = 16


def fine_tune(rows: list[labelled.Labelled], epochs: int, lr: float, seed: int):
    """The fine-tuned encoder and head, as a function from texts to (none, medium, high) probabilities."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    torch.manual_seed(seed)
    shuffle = random.Random(seed).shuffle
    tokenizer = AutoTokenizer.from_pretrained(bundled_model_dir())
    encoder, head = AutoModel.from_pretrained(bundled_model_dir()), torch.nn.Linear(384, len(LEVELS))

    def logits(texts):
        batch = tokenizer(texts, padding=True, truncation=True, max_length=256, return_tensors="pt")
        hidden = encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        pooled = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
        return head(pooled * 20)  # unit vectors: a scale lets the head reach confident logits

    texts = [r.screened_text for r in rows]
    y = torch.tensor([LEVELS.index(r.label) for r in rows])
    weight = len(y) / (len(LEVELS) * torch.bincount(y, minlength=len(LEVELS)).float())
    optimiser = torch.optim.AdamW([*encoder.parameters(), *head.parameters()], lr=lr, weight_decay=0.01)
    steps = epochs * -(-len(texts) // BATCH)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, (s + 1) / (0.1 * steps)) * max(0.0, 1 - s / steps))
    encoder.train()
    for _ in range(epochs):
        order = list(range(len(texts)))
        shuffle(order)
        for i in range(0, len(order), BATCH):
            chosen = order[i:i + BATCH]
            loss = torch.nn.functional.cross_entropy(logits([texts[j] for j in chosen]), y[chosen], weight=weight)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
    encoder.eval()

    def probabilities(batch_texts: list[str]) -> np.ndarray:
        with torch.no_grad():
            return np.vstack([torch.softmax(logits(batch_texts[i:i + 64]), -1).numpy()
                              for i in range(0, len(batch_texts), 64)])
    return probabilities


def lowest_false_positives(p_high: np.ndarray, pattern_high: np.ndarray, label: np.ndarray) -> dict:
    """Per recall target: the highest threshold that reaches it, and the hard negatives it screens high."""
    found = {}
    for target in TARGETS:
        for threshold in np.arange(0.99, 0.0, -0.01):
            flagged = pattern_high | (p_high >= threshold)
            if flagged[label == HIGH].mean() >= target:
                found[str(target)] = {"high_at": round(float(threshold), 2),
                                      "fp_high": round(float(flagged[label == "none"].mean()), 4)}
                break
    return found


def main() -> None:
    """Fit, score dev, print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    screener = Screener.load(Settings.from_env().embeddings_dir)
    if screener.messages is None:
        sys.exit(f"the semantic layer did not load: {screener.semantic_error}")
    train = [r for r in labelled.load("messages", "train") if r.category != labelled.CALMING]
    dev = labelled.load("messages", "dev")
    started = time.perf_counter()
    tuned = fine_tune(train, args.epochs, args.lr, args.seed)
    fit_seconds = time.perf_counter() - started
    label = np.array([r.label for r in dev])
    pattern_high = np.array([risk_level(r.text) == HIGH for r in dev])

    def p_high(probabilities) -> np.ndarray:
        """P(high) of each message alone or with its context, whichever is higher."""
        return np.maximum(probabilities([r.text for r in dev])[:, 2], probabilities([r.screened_text for r in dev])[:, 2])

    linear, fine_tuned = p_high(screener.messages.probabilities), p_high(tuned)
    print(json.dumps({
        "split": "dev", "train_rows": len(train), "epochs": args.epochs, "lr": args.lr,
        "fine_tune_seconds": round(fit_seconds, 1),
        "rows": {"high": int((label == HIGH).sum()), "hard_negatives": int((label == "none").sum())},
        "linear": lowest_false_positives(linear, pattern_high, label),
        "fine_tuned": lowest_false_positives(fine_tuned, pattern_high, label),
        "average": lowest_false_positives((linear + fine_tuned) / 2, pattern_high, label),
    }, indent=1))


if __name__ == "__main__":
    main()
