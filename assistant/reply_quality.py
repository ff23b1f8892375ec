"""A local model's reply beside Groq's: how similar the two are, and whether the local one is degenerate.

Shared by the trainer's evaluation of a candidate and by shadow traffic in the web workers.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

LOOP_NGRAM, LOOP_REPEATS = 4, 3  # a run of four words said three times is a loop


def degenerate(text: str, finished: bool) -> str | None:
    """Why a reply is no use to anyone, or None: empty, looping, or cut off at the length limit."""
    words = text.split()
    if not words:
        return "empty"
    grams = Counter(tuple(words[i:i + LOOP_NGRAM]) for i in range(len(words) - LOOP_NGRAM + 1))
    if grams and max(grams.values()) >= LOOP_REPEATS:
        return "repeats"
    return None if finished else "cut off"


def similarities(embedder, local: list[str], groq: list[str]) -> list[float | None]:
    """Cosine between each local reply's sentence embedding and Groq's; an empty reply shares nothing (0).
    None for each without the embedding model."""
    if embedder is None or not local:
        return [None] * len(local)
    cosines = np.einsum("ij,ij->i", embedder.embed(local), embedder.embed(groq))
    return [round(float(c), 4) if text.strip() else 0.0 for text, c in zip(local, cosines)]
