"""What a run starts from and learns: continue the active version's adapter on what is new, plus a replay
of older examples, or retrain from the base model on the whole history.

Continuing keeps a run's cost proportional to what arrived since its parent, not to the history;
every TRAIN_FULL_EVERY runs (and whenever continuing is impossible) a run starts from the base.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from config import RunConfig
from registry.versions import Version
from trainer.dataset import Example, Split

# Held-out examples whose loss is measured, drawn across the whole history: enough for a steady
# mean, and a cost that does not grow with the history (at 20k replies, 10% held out would take minutes).
EVAL_LOSS_EXAMPLES = 100
LORA_FIELDS = ("lora_r", "lora_alpha", "lora_dropout")


@dataclass(frozen=True)
class RunPlan:
    parent: Version | None  # the version whose adapter the run continues; None: from the base model
    reason: str  # why the run is of its kind, for the log and the version's metadata
    since: int  # examples newer than this message id are new; older ones are replayed
    split: Split  # what the run trains on and evaluates on
    watermark: int  # the newest message id in the whole history the run was planned on
    held_out: int  # new examples in held-out conversations (the loss reads a sample of those)

    @property
    def kind(self) -> str:
        return "from_base" if self.parent is None else "incremental"

    @property
    def runs_since_base(self) -> int:
        """0 for a run from the base model, one more than its parent's for a continuation."""
        return 0 if self.parent is None else self.parent.metadata.get("runs_since_base", 0) + 1

    def trained_on(self) -> dict:
        """How many new and replayed examples it trained on, and how many new ones were held out."""
        new = _newer(self.split.train, self.since)
        return {"new": new, "replay": len(self.split.train) - new, "held_out": self.held_out}

    def with_split(self, split: Split) -> "RunPlan":
        return replace(self, split=split)


def plan_run(config: RunConfig, active: Version | None, split: Split, last_watermark: int,
             since_from_base: int) -> RunPlan:
    """Continue ``active`` when it can be continued, else retrain from the base on the whole history.

    ``since_from_base`` counts the completed runs since the last one from the base model, whether
    or not its version passed the gate: a rejected retrain does not make every later run one.
    """
    ts = config.train
    rng = random.Random(ts.seed)
    held_out = _sample(split.eval, EVAL_LOSS_EXAMPLES, rng)
    reason = _from_base_reason(config, active, since_from_base)
    since = active.metadata.get("watermark", 0) if reason is None else last_watermark
    new = [e for e in split.train if e.message_id > since]
    if reason is None and not new:
        reason = f"no new eligible replies since {active.name}"
    if reason is not None:
        return RunPlan(None, reason, last_watermark, Split(split.train, held_out), split.watermark,
                       _newer(split.eval, last_watermark))
    older = [e for e in split.train if e.message_id <= since]
    replay = _sample(older, round(ts.replay_ratio * len(new)), rng)
    return RunPlan(active, f"continues {active.name}", since, Split(new + replay, held_out), split.watermark,
                   _newer(split.eval, since))


def _newer(examples: list[Example], since: int) -> int:
    return sum(e.message_id > since for e in examples)


def _from_base_reason(config: RunConfig, active: Version | None, since_from_base: int) -> str | None:
    """Why this run cannot continue the active version, or None when it can."""
    ts = config.train
    if config.from_base:
        return "a retrain from the base model was asked for"
    if ts.full_finetune:
        return "TRAIN_FULL=1 trains every weight, from the base model"
    if active is None:
        return "no version is active"
    meta = active.metadata
    if meta.get("weights") != "adapter":
        return f"{active.name} holds full weights, not an adapter"
    if meta.get("base_model") != config.base_model:
        return f"{active.name} was trained on another base model"
    parent_train = meta.get("settings", {}).get("train", {})
    if any(parent_train.get(name) != getattr(ts, name) for name in LORA_FIELDS):
        return f"LORA_R, LORA_ALPHA or LORA_DROPOUT differ from {active.name}'s"
    if since_from_base + 1 >= ts.full_every:
        return f"TRAIN_FULL_EVERY is {ts.full_every}: one run in {ts.full_every} retrains from the base model"
    return None


def _sample(examples: list[Example], count: int, rng: random.Random) -> list[Example]:
    """Up to ``count`` of ``examples``, drawn uniformly at random, in message order."""
    if count >= len(examples):
        return list(examples)
    return sorted(rng.sample(examples, count), key=lambda e: e.message_id)
