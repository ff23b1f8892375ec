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
