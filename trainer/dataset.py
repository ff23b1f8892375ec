"""Logged conversations to training examples: one per eligible Groq reply, redacted, split by conversation."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

from assistant.prompts import build_messages
from assistant.redact import redact
from embeddings.search import repeats_earlier
from storage.training_data import Conversation, TrainingData

NEAR_DUPLICATE = 0.97  # cosine on prompt and on reply: "How can I sleep better?" / "How do I sleep better?" is 0.988


@dataclass(frozen=True)
class Example:
    """One training example in the chat `messages` format; the last message is the target."""

    session_id: str
    message_id: int
    messages: list[dict]


@dataclass(frozen=True)
class Split:
    """Train and eval examples; no conversation is in both."""

    train: list[Example]
    eval: list[Example]

    @property
    def watermark(self) -> int:
        """The newest message id the examples use."""
        return max((e.message_id for e in self.train + self.eval), default=0)


def examples_from(conversation: Conversation, history_turns: int) -> list[Example]:
    """An example per eligible reply: system prompt, prior clean exchanges, the user message, the reply."""
    examples, exchanges, pending_user = [], [], None
    for message in conversation.messages:
        if message.role == "user":
            pending_user = message
            continue
        if pending_user is None:
            continue  # a reply without its question: nothing to learn from
        if message.id in conversation.eligible_ids:
            history = [(author, text) for pair in exchanges[-history_turns:] for author, text in pair] \
                if history_turns else []
            messages = build_messages(conversation.role, history, pending_user.content)
            messages.append({"role": "assistant", "content": message.content})
            examples.append(Example(conversation.session_id, message.id, _redacted(messages)))
        if pending_user.risk_level == "none" and message.status == "ok":
            # only calm, complete exchanges become context for later examples
            exchanges.append((("user", pending_user.content), ("assistant", message.content)))
        pending_user = None
    return examples


def _redacted(messages: list[dict]) -> list[dict]:
    """The same messages with PII replaced by placeholders."""
    return [{"role": m["role"], "content": redact(m["content"])} for m in messages]


def split_by_conversation(conversations: list[list[Example]], eval_fraction: float,
                          sides: dict[str, bool] | None = None) -> Split:
    """Hold out about ``eval_fraction`` of the conversations, at least one when there are two or more.

    ``sides`` holds the side each conversation was given by an earlier run (True: held out), and a
    conversation keeps it: a version continued from an earlier one is never evaluated on a
    conversation its ancestors trained on. New conversations, ordered by a hash of their id (the
    same on every run), make up what the held-out share lacks, the lowest first, but never more than
    ``eval_fraction`` of them (rounded up): a raised fraction cannot take every new conversation.
    With nothing recorded, that is the lowest share of all conversations by hash.
    """
    sides = sides or {}
    ordered = sorted((c for c in conversations if c), key=lambda c: hashlib.sha256(c[0].session_id.encode()).digest())
    wanted = max(1, round(len(ordered) * eval_fraction)) if len(ordered) >= 2 else 0
    new = [c for c in ordered if c[0].session_id not in sides]
    lacking = wanted - sum(sides.get(c[0].session_id, False) for c in ordered)
    taken = new[:max(0, min(lacking, math.ceil(round(len(new) * eval_fraction, 9))))]  # 100 * 0.07 is 7.000…01
    held_out = {c[0].session_id for c in taken} | {s for s, held in sides.items() if held}
    return Split(
        train=[e for c in ordered if c[0].session_id not in held_out for e in c],
        eval=[e for c in ordered if c[0].session_id in held_out for e in c],
    )


def without_near_duplicates(split: Split, embedder) -> tuple[Split, int]:
    """The split without examples whose prompt (the last user message) and reply are both at least
    NEAR_DUPLICATE similar to an earlier example's (by message id, whichever side of the split it is on),
    and how many were dropped."""
    examples = sorted(split.train + split.eval, key=lambda e: e.message_id)
    if not examples:
        return split, 0
    prompts = embedder.embed([e.messages[-2]["content"] for e in examples])
    replies = embedder.embed([e.messages[-1]["content"] for e in examples])
    dropped = {e.message_id for e, repeat in zip(examples, repeats_earlier(prompts, replies, NEAR_DUPLICATE))
               if repeat}
    kept = Split(train=[e for e in split.train if e.message_id not in dropped],
                 eval=[e for e in split.eval if e.message_id not in dropped])
    return kept, len(dropped)


def load_split(training_data: TrainingData, history_turns: int, eval_fraction: float) -> Split:
    """The examples in the database, split for training and evaluation, each conversation on its recorded side."""
    conversations = training_data.training_conversations()
    sides = {c.session_id: c.held_out for c in conversations if c.held_out is not None}
    return split_by_conversation([examples_from(c, history_turns) for c in conversations], eval_fraction, sides)


def keep_sides(training_data: TrainingData, split: Split) -> None:
    """Record the side of each conversation in ``split`` that has none yet, for every later run."""
    training_data.keep_split_sides({e.session_id for e in split.eval}, {e.session_id for e in split.train})


def to_datasets(split: Split):
    """The split as a `datasets.DatasetDict` with `train` and `eval`, columns messages and session_id."""
    from datasets import Dataset, DatasetDict

    def table(examples: list[Example]) -> Dataset:
        return Dataset.from_list([{"session_id": e.session_id, "messages": e.messages} for e in examples])

    return DatasetDict(train=table(split.train), eval=table(split.eval))


def export_jsonl(split: Split, path: Path) -> int:
    """Write every example as a chat JSONL line ({"messages": [...]}); returns how many."""
    path.parent.mkdir(parents=True, exist_ok=True)
    examples = split.train + split.eval
    with path.open("w", encoding="utf-8") as out:
        for example in examples:
            out.write(json.dumps({"messages": example.messages}, ensure_ascii=False) + "\n")
    return len(examples)
