"""The semantic layer: a linear classifier over sentence embeddings and word pairs, fitted on the labelled train split.

Softmax regression with balanced class weights and an L2 penalty. Fitting embeds the
~2,500 labelled train texts and runs 1,500 full-batch steps: about 20 s on 2 cores, so the
weights are kept beside the ONNX model, named by a digest of the labelled rows and the
settings, and later processes (every web worker, every restart) load them instead.
On the dev split it beat voting by the nearest labelled exemplars (at about the same
recall, a third of the false positives on hard negatives) and came within a few points
of scikit-learn's LogisticRegression, which would add scipy and scikit-learn to every web
worker for this one fit.

Beside the embedding, each text's words and word pairs, hashed into WORD_FEATURES
buckets: MiniLM places "going to hang the curtains" and "my sister will kill me" near
their literal readings, and the words around the verb ("my sister", "curtains") tell
them apart. Out of fold on train + dev (5 folds, 1,240 messages), at 0.95 high-risk
recall, hard negatives screened high fell from 31% to 20%, and at 0.90 passive recall
those given resources from 21% to 17%.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import zlib
from pathlib import Path

import numpy as np

from assistant.safety import patterns
from assistant.safety.labelled import Labelled
from assistant.safety.patterns import normalise
from embeddings.model import Embedder

log = logging.getLogger(__name__)

L2 = 1e-4  # penalty on the weights; out of fold, better than 3e-4 and 1e-3 with the word features
WORD_FEATURES = 4096  # hash buckets for words and word pairs (crc32: the same in every process)
STEPS, LEARNING_RATE = 1500, 0.05


class LinearClassifier:
    """Label probabilities for texts from their embeddings and words."""

    def __init__(self, embedder: Embedder, exemplars: list[Labelled], labels: tuple[str, ...], cache_dir: Path):
        self.embedder, self.labels, self.size = embedder, labels, len(exemplars)
        texts = [e.screened_text for e in exemplars]
        y = [labels.index(e.label) for e in exemplars]
        # The rows, the settings and the code that turns a text into features (this file, and the
        # normalisation in patterns.py) name the weights: a change to any of them fits anew.
        digest = hashlib.sha256(json.dumps([embedder.name, WORD_FEATURES, L2, STEPS, LEARNING_RATE, labels, texts, y])
                                .encode())
        for source in (__file__, patterns.__file__):
            digest.update(Path(source).read_bytes())
        cached = Path(cache_dir) / f"safety-classifier-{digest.hexdigest()[:16]}.npz"
        try:
            with np.load(cached) as saved:
                self.weights, self.bias = saved["weights"], saved["bias"]
            return
        except (OSError, KeyError, ValueError):
            pass  # not fitted yet (or unreadable): fit and keep it
        self.weights, self.bias = _fit(self.embedder.embed(texts), _words(texts), np.array(y), len(labels))
        _save(cached, weights=self.weights, bias=self.bias)

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """One row per text, one column per label, summing to 1."""
        return _softmax(self.features(texts) @ self.weights + self.bias)

    def features(self, texts: list[str]) -> np.ndarray:
        """The sentence embedding and the hashed words, side by side, each of unit length."""
        return np.hstack([self.embedder.embed(texts), _words(texts)])


def _words(texts: list[str]) -> np.ndarray:
    """The hashed words of each text, one row per text."""
    return np.stack([_hashed_words(t) for t in texts])


def _hashed_words(text: str) -> np.ndarray:
    """Counts of the text's words and adjacent word pairs in WORD_FEATURES buckets, of unit length."""
    words = re.findall(r"\w+", normalise(text))
    counts = np.zeros(WORD_FEATURES, dtype=np.float32)
    for gram in words + [f"{a} {b}" for a, b in zip(words, words[1:])]:
        counts[zlib.crc32(gram.encode()) % WORD_FEATURES] += 1
    norm = np.linalg.norm(counts)
    return counts / norm if norm else counts


def _save(path: Path, **arrays: np.ndarray) -> None:
    """Write the arrays atomically; a read-only folder only costs the next process a fit."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.npz")
    try:
        np.savez(partial, **arrays)
        os.replace(partial, path)
    except OSError as e:
        partial.unlink(missing_ok=True)
        log.warning("Could not keep the fitted safety classifier in %s (%s): each process will fit it", path.parent, e)


def _fit(embeddings: np.ndarray, words: np.ndarray, y: np.ndarray, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Weights (the embedding's rows, then the words') and bias minimising class-balanced cross-entropy
    plus L2, by full-batch Adam.

    All float32: float64 made the fit nine times slower. A text fills about 25 of the 4,096 word
    buckets, so the words are multiplied as sparse rows: on 2 cores, 4 s a fit against 29 s as one
    dense matrix, with the same probabilities within 1e-6 (numpy alone: scipy would be one more
    package in every web worker for this).
    """
    rows, cols = np.nonzero(words)  # row-major: sorted by row
    values = words[rows, cols][:, None]
    by_bucket = np.argsort(cols, kind="stable")
    texts_with_words, text_starts = _segments(rows)
    used_buckets, bucket_starts = _segments(cols[by_bucket])
    onehot = np.eye(classes, dtype=np.float32)[y]
    counts = np.bincount(y, minlength=classes)
    sample_weight = ((len(y) / (classes * np.maximum(counts, 1)))[y][:, None] / len(y)).astype(np.float32)
    params = [np.zeros((embeddings.shape[1], classes), dtype=np.float32),
              np.zeros((words.shape[1], classes), dtype=np.float32), np.zeros(classes, dtype=np.float32)]
    moments = [[np.zeros_like(p), np.zeros_like(p)] for p in params]
    for step in range(1, STEPS + 1):
        from_words = np.zeros_like(onehot)
        from_words[texts_with_words] = np.add.reduceat(values * params[1][cols], text_starts)
        error = (_softmax(embeddings @ params[0] + from_words + params[2]) - onehot) * sample_weight
        word_grads = np.zeros_like(params[1])
        word_grads[used_buckets] = np.add.reduceat((values * error[rows])[by_bucket], bucket_starts)
        grads = [embeddings.T @ error + L2 * params[0], word_grads + L2 * params[1], error.sum(axis=0)]
        for p, g, m in zip(params, grads, moments):
            m[0] = 0.9 * m[0] + 0.1 * g
            m[1] = 0.999 * m[1] + 0.001 * g * g
            p -= LEARNING_RATE * (m[0] / (1 - 0.9 ** step)) / (np.sqrt(m[1] / (1 - 0.999 ** step)) + 1e-8)
    return np.vstack(params[:2]), params[2]


def _segments(sorted_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values of a sorted index, and where each one's run starts (for np.add.reduceat)."""
    present = np.unique(sorted_index)
    return present, np.searchsorted(sorted_index, present)


def _softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax."""
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
