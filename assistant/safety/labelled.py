"""The labelled safety sets in data/safety/: user messages and model replies, each line with its split.

Splits are fixed in the files (per category: about 60% train, 20% dev, 20% test). The
semantic layer learns from train; thresholds were chosen on dev; figures are reported
on test only (bench/safety_eval.py).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parents[2] / "data" / "safety"
CONTEXT_MESSAGES = 2  # earlier user messages screened together with the new one
AFTER_CRISIS = ("goes_on", "calms")  # what a message after a crisis turn does
CALMING = "after_crisis"  # the category of messages after a crisis turn that calm (label medium)


@dataclass(frozen=True)
class Labelled:
    """One labelled text; ``context`` holds the same user's earlier messages, oldest first."""

    text: str
    label: str
    category: str
    split: str
    lang: str = "en"
    context: tuple[str, ...] = ()

    @property
    def screened_text(self) -> str:
        """The text as screening sees it: with its context when it has one."""
        return with_context(self.context, self.text)


def load(name: str, split: str | None = None) -> list[Labelled]:
    """The rows of data/safety/<name>.jsonl ("messages" or "replies"), optionally of one split."""
    rows = []
    for line in (DATA_DIR / f"{name}.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            rows.append(Labelled(row["text"], row["label"], row["category"], row["split"], row.get("lang", "en"),
                                 tuple(row.get("context", ()))))
    return [r for r in rows if split is None or r.split == split]


def with_context(context: tuple[str, ...] | list[str], text: str) -> str:
    """The last CONTEXT_MESSAGES earlier messages and the new one, as one text."""
    return "\n".join([*list(context)[-CONTEXT_MESSAGES:], text])


def after_crisis(rows: list[Labelled]) -> list[Labelled]:
    """Messages after a crisis turn, alone: the plans that context revealed go on, CALMING rows calm."""
    return [dataclasses.replace(r, context=(), label=AFTER_CRISIS[r.category == CALMING])
            for r in rows if r.category in ("context", CALMING) and r.context]
