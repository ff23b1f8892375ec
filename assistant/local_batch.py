"""The replies of one model version decoding together: one KV cache whose rows are left-padded to a common
length, an attention mask that hides the padding, and one forward pass per step for every row.

Why padded rows in one forward rather than a cache per reply stepped in turn: at batch size one each token
costs a pass over every weight; eight rows share that pass. bench/batch_layout.py (SmolLM2-135M's shape, int8,
one torch thread, 8 prompts of ~200 tokens, 64 new tokens each, 3 rounds on a shared 2-core machine): padded batch
138 tokens/s aggregate (3.6x one reply alone, 39 tokens/s), eight caches stepped in turn 34 tokens/s (0.9x).

A reply's prompt is run alone (its prefill), then its cache is padded into the batch's. Each row keeps its own
positions (RoPE), its own tokens for the repetition penalty and its own sampling draw, so a reply does not
depend on its neighbours, except through int8's activation scale, which dynamic quantisation takes over the
whole batch (tests/test_local_batching.py bounds that difference).
"""

from __future__ import annotations

import time

import torch

from assistant.local_decoder import Row


class DeadlineExceeded(TimeoutError):
    """The reply was not finished within LOCAL_TIMEOUT."""


class Batch:
    """Rows decoding on one LoadedModel; ``join`` adds a reply, ``step`` gives every row its next token."""

    def __init__(self, loaded):
        self.loaded = loaded
        self.rows: list[Row] = []
        self.cache = None  # the batch's DynamicCache: keys and values [rows, heads, columns, dim]
        self.mask = torch.zeros(0, 0, dtype=torch.long)  # [rows, columns]: 1 where a row has a token

    def join(self, row: Row) -> None:
        """Run the reply's prompt alone, give it its first token and, unless it already ended, a row."""
        try:
            ids = self.loaded.prompt(row.messages)
            row.put("prompt", ids.shape[1])
            cache, logits = self.loaded.prefill(ids)
        except Exception as e:
            row.put("error", e)
            return
        row.seen = ids
        if self._take(row, logits[0]):
            self._merge(row, cache)

    def step(self) -> None:
        """One forward pass for every row still wanted; rows that end leave at once."""
        self._keep([i for i, row in enumerate(self.rows) if not row.cancelled.is_set()])
        if not self.rows:
            return
        self.mask = torch.cat([self.mask, torch.ones(len(self.rows), 1, dtype=torch.long)], dim=1)
        tokens = torch.stack([row.seen[0, -1:] for row in self.rows])
        positions = torch.tensor([[row.seen.shape[1] - 1] for row in self.rows])
        try:
            logits = self.loaded.step(tokens, self.cache, self.mask, positions)
        except Exception as e:  # every row shares the failure
            for row in self.rows:
                row.put("error", e)
            self._keep([])
            return
        self._keep([i for i, row in enumerate(self.rows) if self._take(row, logits[i])])

    def _take(self, row: Row, logits: torch.Tensor) -> bool:
        """Pick the row's next token and hand it over; False once the reply has ended."""
        token = self.loaded.pick(row.seen, logits[None])
        if token in self.loaded.eos:
            row.put("end", None)
            return False
        row.put("token", token)
        row.seen = torch.cat([row.seen, torch.tensor([[token]])], dim=1)
        if row.seen.shape[1] - row.prompt_tokens >= self.loaded.settings.max_new_tokens:
            row.put("end", None)
            return False
        if time.monotonic() > row.deadline:
            row.put("error", DeadlineExceeded())
            return False
        return True

    def _merge(self, row: Row, cache) -> None:
        """Pad the new row's cache or the batch's on the left to the longer of the two, and stack them."""
        columns = row.seen.shape[1] - 1  # the last token is the next step's input, not yet in the cache
        if not self.rows:
            self.rows, self.cache, self.mask = [row], cache, torch.ones(1, columns, dtype=torch.long)
            return
        width = max(columns, self.mask.shape[1])
        for mine, theirs in zip(self.cache.layers, cache.layers):
            mine.keys = torch.cat([_pad(mine.keys, width), _pad(theirs.keys, width)])
            mine.values = torch.cat([_pad(mine.values, width), _pad(theirs.values, width)])
        self.mask = torch.cat([_pad(self.mask, width), _pad(torch.ones(1, columns, dtype=torch.long), width)])
        self.rows.append(row)

    def _keep(self, indices: list[int]) -> None:
        """Keep only these rows, and drop the columns that are padding in all of them."""
        if len(indices) == len(self.rows):
            return
        self.rows = [self.rows[i] for i in indices]
        if not self.rows:
            self.cache, self.mask = None, torch.zeros(0, 0, dtype=torch.long)
            return
        keep = torch.tensor(indices)
        self.mask = self.mask[keep]
        first = int(self.mask.any(dim=0).int().argmax())
        self.mask = self.mask[:, first:]
        for layer in self.cache.layers:
            layer.keys, layer.values = layer.keys[keep, :, first:], layer.values[keep, :, first:]


def _pad(tensor: torch.Tensor, width: int) -> torch.Tensor:
    """Zeros on the left of the columns (dim 2 of a cache layer, dim 1 of a mask) up to ``width``."""
    dim = 2 if tensor.dim() == 4 else 1
    missing = width - tensor.shape[dim]
    if missing == 0:
        return tensor
    shape = list(tensor.shape)
    shape[dim] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)
