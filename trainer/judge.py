"""What a version says: held-out prompts answered, and read beside the replies Groq gave.

A loss says how likely Groq's words were; admins need to read what the model would say
instead. Each version answers the same held-out prompts, greedily (the same replies on every
run), and each reply is compared with Groq's: sentence-embedding similarity, the reply
screening's verdict, and whether it is degenerate (empty, looping, or cut off).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import numpy as np

from assistant.local_model import LoadedModel, PromptTooLong
from assistant.reply_quality import degenerate, similarities
from assistant.safety.screener import Screener
from config import LocalSettings, TrainSettings
from trainer.dataset import Example

SAMPLES = 20  # replies kept in the metadata for admins to read, problems first
# Greedy decoding with int8 weights and, by default, serving's reply length: each version is judged as
# it would be served (the candidate through an int8 copy, in memory, before it is saved). Measured on
# this 2-core machine, SmolLM2-135M's shape with random weights (every reply runs to 256 tokens), 24
# replies: 272 s with int8, 382 s in float32.
NO_DEADLINE_S = 3600.0


@dataclass(frozen=True)
class HeldOutPrompts:
    """One run's held-out prompts, and what judges the replies to them."""

    examples: list[Example]
    screener: Screener
    embedder: object | None  # an embeddings.model.Embedder; None when it did not load (no similarity then)
    reading: LocalSettings  # greedy, up to TRAIN_EVAL_MAX_NEW_TOKENS

    @classmethod
    def for_run(cls, held_out: list[Example], train: TrainSettings, screener: Screener,
                embedder) -> "HeldOutPrompts":
        """Up to TRAIN_EVAL_REPLIES held-out examples, drawn across the whole history, the same for every
        version read, answered greedily up to TRAIN_EVAL_MAX_NEW_TOKENS."""
        chosen = random.Random(train.seed).sample(held_out, min(train.eval_replies, len(held_out)))
        return cls(sorted(chosen, key=lambda e: e.message_id), screener, embedder,
                   LocalSettings(temperature=0.0, max_new_tokens=train.eval_max_new_tokens))

    def evaluate(self, version: str, model, tokenizer) -> dict:
        """``evaluation`` for a version's metadata: its replies to the held-out prompts beside Groq's.

        ``similarity`` is the mean cosine between the two replies' sentence embeddings (None without
        the embedding model); ``unsafe`` and ``degenerate`` count replies; ``length_ratio`` is the mean
        of the local reply's length over Groq's. Examples are redacted as training data is.
        """
        loaded = LoadedModel(version, model, tokenizer, self.reading)
        readings = []
        for example in self.examples:
            try:
                local, finished = loaded.reply(example.messages[:-1], time.monotonic() + NO_DEADLINE_S)
            except PromptTooLong:
                continue
            readings.append({"prompt": example.messages[-2]["content"], "groq": example.messages[-1]["content"],
                             "local": local, "unsafe": self.screener.unsafe(local),
                             "degenerate": degenerate(local, finished)})
        cosines = similarities(self.embedder, [r["local"] for r in readings], [r["groq"] for r in readings])
        for reading, similarity in zip(readings, cosines):
            reading["similarity"] = similarity
        return {
            "examples": len(readings),
            "similarity": _mean(cosines) if self.embedder is not None else None,
            "unsafe": sum(r["unsafe"] for r in readings),
            "degenerate": sum(r["degenerate"] is not None for r in readings),
            "length_ratio": _mean([len(r["local"]) / max(1, len(r["groq"])) for r in readings]),
            "samples": sorted(readings, key=lambda r: (not r["unsafe"], r["degenerate"] is None))[:SAMPLES],
        }


def summary(version: str, evaluation: dict) -> dict:
    """The figures without the samples: how the active version did, in a candidate's metadata."""
    return {"version": version, **{k: v for k, v in evaluation.items() if k != "samples"}}


def _mean(values: list) -> float | None:
    """The mean rounded to four places; None for none."""
    return round(float(np.mean(values)), 4) if values else None
