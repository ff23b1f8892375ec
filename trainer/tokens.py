"""Chat examples to token ids with labels on the assistant reply only, and batches of them."""

from __future__ import annotations

import random
from dataclasses import dataclass

IGNORE = -100  # label of a token the loss skips
# Batches are padded to a multiple of this: a handful of distinct shapes lets oneDNN reuse
# its kernels and the allocator reuse its blocks, where every new shape costs both.
PAD_MULTIPLE = 64


def padded(length: int) -> int:
    """``length`` rounded up to the next multiple of PAD_MULTIPLE."""
    return -(-length // PAD_MULTIPLE) * PAD_MULTIPLE


@dataclass(frozen=True)
class Features:
    """One tokenised example; ``labels`` is IGNORE outside the target reply."""

    input_ids: list[int]
    labels: list[int]

    @property
    def supervised(self) -> int:
        """How many tokens the loss is taken on (each label is predicted from the token before it)."""
        return sum(1 for label in self.labels[1:] if label != IGNORE)


def render(tokenizer, messages: list[dict], max_len: int) -> Features | None:
    """Tokenise prompt and reply apart, so the reply's tokens are exactly what generation would produce.

    SmolLM2's ChatML template has no generation markers, so the prompt is found by rendering
    the conversation without its last message, with the generation prompt. When the example
    is too long its oldest exchanges go first; a reply that alone does not fit is cut.
    """
    while True:
        prompt = tokenizer.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(messages, tokenize=False)
        if not full.startswith(prompt):
            raise ValueError("The chat template does not render the prompt as a prefix of the conversation.")
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        reply_ids = tokenizer(full[len(prompt):], add_special_tokens=False)["input_ids"]
        if len(prompt_ids) + len(reply_ids) <= max_len or len(messages) <= 3:
            break
        messages = messages[:1] + messages[3:]  # drop the oldest exchange after the system prompt
    reply_ids = reply_ids[: max(0, max_len - len(prompt_ids))]
    if not reply_ids:
        return None  # the prompt alone fills the window: nothing left to learn from
    return Features(prompt_ids + reply_ids, [IGNORE] * len(prompt_ids) + reply_ids)


def length_grouped_batches(lengths: list[int], batch_tokens: int, rng: random.Random) -> list[list[int]]:
    """Batches of indices of similar length, each at most ``batch_tokens`` once padded.

    Shuffled, then sorted by length within windows, so batches differ between epochs but
    waste little on padding.
    """
    lengths = [padded(n) for n in lengths]
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = 64
    batches: list[list[int]] = []
    for start in range(0, len(order), window):
        current: list[int] = []
        for index in sorted(order[start:start + window], key=lambda i: lengths[i], reverse=True):
            longest = lengths[current[0]] if current else lengths[index]
            if current and longest * (len(current) + 1) > batch_tokens:
                batches.append(current)
                current = []
            current.append(index)
        if current:
            batches.append(current)
    rng.shuffle(batches)
    return batches


def collate(batch: list[Features], pad_id: int):
    """Right-padded tensors: input_ids, attention_mask, labels."""
    import torch

    width = padded(max(len(f.input_ids) for f in batch))
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, features in enumerate(batch):
        n = len(features.input_ids)
        input_ids[row, :n] = torch.tensor(features.input_ids)
        labels[row, :n] = torch.tensor(features.labels)
        attention_mask[row, :n] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
