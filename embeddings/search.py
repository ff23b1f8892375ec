"""Exact nearest-neighbour search over unit vectors: portable, for sets of thousands of rows."""

from __future__ import annotations

import numpy as np


def nearest(queries: np.ndarray, corpus: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarities and row indices of the ``k`` most similar corpus rows per query, best first."""
    k = min(k, len(corpus))
    scores = queries @ corpus.T
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    top_scores = np.take_along_axis(scores, top, axis=1)
    order = np.argsort(-top_scores, axis=1)
    return np.take_along_axis(top_scores, order, axis=1), np.take_along_axis(top, order, axis=1)


def repeats_earlier(first: np.ndarray, second: np.ndarray, threshold: float, chunk: int = 1024) -> np.ndarray:
    """For each row i, whether some earlier row j < i is at least ``threshold`` similar in both ``first`` and
    ``second`` (say, a prompt and its reply). Exact, in chunks of rows: memory stays at chunk x n."""
    repeated = np.zeros(len(first), dtype=bool)
    for start in range(0, len(first), chunk):
        end = min(start + chunk, len(first))
        close = (first[start:end] @ first[:end].T >= threshold) & (second[start:end] @ second[:end].T >= threshold)
        earlier = np.arange(end)[None, :] < np.arange(start, end)[:, None]
        repeated[start:end] = (close & earlier).any(axis=1)
    return repeated
