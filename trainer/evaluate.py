"""Held-out assistant-token loss, and the gate a candidate must pass to become active."""

from __future__ import annotations

import random
from contextlib import nullcontext
from dataclasses import dataclass

import torch

from hardware import use_bf16
from trainer.finetune import supervised_loss
from trainer.tokens import Features, collate, length_grouped_batches


def eval_loss(model, features: list[Features], pad_id: int, batch_tokens: int, bf16: str) -> float | None:
    """Mean cross-entropy per assistant token over ``features``; None when there are none."""
    if not features:
        return None
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if use_bf16(bf16) else nullcontext()
    batches = length_grouped_batches([len(f.input_ids) for f in features], batch_tokens, random.Random(0))
    total, tokens = 0.0, 0
    model.eval()
    with torch.no_grad(), autocast:
        for batch in batches:
            loss_sum, n = supervised_loss(model, collate([features[i] for i in batch], pad_id))
            total, tokens = total + loss_sum.item(), tokens + n
    return total / max(1, tokens)


@dataclass(frozen=True)
class Verdict:
    promote: bool
    reason: str


def gate(candidate: float | None, active: float | None, base: float | None) -> Verdict:
    """Promote only a candidate that beats the active version, or the base model when none is active."""
    if candidate is None:
        return Verdict(False, "no held-out conversations to evaluate on (need at least two conversations)")
    reference, name = (active, "active version") if active is not None else (base, "base model")
    if candidate < reference:
        return Verdict(True, f"eval loss {candidate:.4f} beats the {name}'s {reference:.4f}")
    return Verdict(False, f"eval loss {candidate:.4f} does not beat the {name}'s {reference:.4f}")
