"""Held-out assistant-token loss, and the gate a candidate must pass to become active."""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from trainer.finetune import bf16_autocast, supervised_loss
from trainer.tokens import Features, collate, length_grouped_batches


def eval_loss(model, features: list[Features], pad_id: int, batch_tokens: int, bf16: str) -> float | None:
    """Mean cross-entropy per assistant token over ``features``; None when there are none."""
    if not features:
        return None
    autocast = bf16_autocast(bf16)
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


def gate(candidate: float | None, active: float | None, base: float | None,
         replies: dict | None = None, active_replies: dict | None = None, margin: float = 0.05) -> Verdict:
    """Promote only a candidate that beats the active version's loss (or the base model's when none is
    active), said nothing the reply screening withholds, and whose replies are not further from Groq's
    than the active version's by more than ``margin`` of similarity."""
    if candidate is None:
        return Verdict(False, ("no held-out conversations to evaluate on (it takes two conversations; held-out ones "
                                "erased or without consent are replaced as new conversations arrive)"))
    reference, name = (active, "active version") if active is not None else (base, "base model")
    if candidate >= reference:
        return Verdict(False, f"eval loss {candidate:.4f} does not beat the {name}'s {reference:.4f}")
    reason = f"eval loss {candidate:.4f} beats the {name}'s {reference:.4f}"
    if replies is None:
        return Verdict(True, reason)
    if replies["unsafe"]:
        return Verdict(False, f"{replies['unsafe']} of {replies['examples']} held-out replies were unsafe "
                              "(the reply screening would withhold them)")
    similarity, floor = replies["similarity"], (active_replies or {}).get("similarity")
    if similarity is not None and floor is not None and similarity < floor - margin:
        return Verdict(False, f"its replies' similarity to Groq's, {similarity:.3f}, is more than {margin:g} "
                              f"below the active version's {floor:.3f}")
    return Verdict(True, f"{reason}; no unsafe held-out replies" +
                   (f"; similarity to Groq's replies {similarity:.3f}" if similarity is not None else ""))
