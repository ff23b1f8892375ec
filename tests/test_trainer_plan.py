"""Whether a run continues the active version, and what it trains on."""

from dataclasses import replace
from pathlib import Path

import pytest

from config import RunConfig, Settings
from registry.versions import Version
from trainer.dataset import Example, Split
from trainer.plan import EVAL_LOSS_EXAMPLES, plan_run

CONFIG = RunConfig.from_settings(Settings(base_model="base"))


def example(message_id: int) -> Example:
    return Example(f"s{message_id}", message_id, [{"role": "assistant", "content": str(message_id)}])


def adapter_version(watermark: int, **changes) -> Version:
    metadata = {"weights": "adapter", "base_model": "base", "watermark": watermark, "runs_since_base": 0,
                "settings": CONFIG.to_dict(), **changes}
    return Version("model_20261122_000000", Path("/nowhere"), metadata)


SPLIT = Split(train=[example(i) for i in range(1, 41)], eval=[example(i) for i in (41, 42, 43)])


def test_a_run_continues_the_active_adapter_on_what_is_new_with_as_many_older_examples_replayed():
    plan = plan_run(CONFIG, adapter_version(30), SPLIT, last_watermark=30, since_from_base=0)

    assert plan.kind == "incremental" and plan.runs_since_base == 1
    assert plan.trained_on() == {"new": 10, "replay": 10, "held_out": 3}
    assert sorted(e.message_id for e in plan.split.train)[-10:] == list(range(31, 41))
    assert len({e.message_id for e in plan.split.train}) == 20 and plan.watermark == 43


def test_replay_is_capped_by_the_older_examples_there_are_and_follows_the_ratio():
    doubled = replace(CONFIG, train=replace(CONFIG.train, replay_ratio=2.0))
    none = replace(CONFIG, train=replace(CONFIG.train, replay_ratio=0.0))

    assert plan_run(doubled, adapter_version(35), SPLIT, 35, 0).trained_on()["replay"] == 10
    assert plan_run(doubled, adapter_version(5), SPLIT, 5, 0).trained_on()["replay"] == 5  # all there are
    assert plan_run(none, adapter_version(30), SPLIT, 30, 0).trained_on() == {"new": 10, "replay": 0, "held_out": 3}


@pytest.mark.parametrize("config, active, reason", [
    (replace(CONFIG, from_base=True), adapter_version(30), "was asked for"),
    (replace(CONFIG, train=replace(CONFIG.train, full_finetune=True)), adapter_version(30), "TRAIN_FULL=1"),
    (CONFIG, None, "no version is active"),
    (CONFIG, adapter_version(30, weights="full"), "holds full weights"),
    (CONFIG, adapter_version(30, base_model="other"), "another base model"),
    (CONFIG, adapter_version(30, settings={"train": {"lora_r": 8}}), "LORA_R"),
    (CONFIG, adapter_version(43), "no new eligible replies"),
])
def test_a_run_starts_from_the_base_on_the_whole_history_when_it_cannot_continue(config, active, reason):
    plan = plan_run(config, active, SPLIT, last_watermark=30, since_from_base=0)

    assert plan.kind == "from_base" and plan.parent is None and plan.runs_since_base == 0
    assert reason in plan.reason
    assert plan.trained_on() == {"new": 10, "replay": 30, "held_out": 3}  # new since the last run's watermark


def test_held_out_loss_reads_a_sample_across_the_history_and_counts_every_new_held_out_example():
    ids = range(1, 1601)  # one conversation in four held out: 400 held-out examples, 50 of them after 1400
    history = Split(train=[example(i) for i in ids if i % 4], eval=[example(i) for i in ids if i % 4 == 0])

    plan = plan_run(CONFIG, adapter_version(1400), history, last_watermark=1400, since_from_base=0)

    held_out_ids = [e.message_id for e in plan.split.eval]
    assert len(held_out_ids) == EVAL_LOSS_EXAMPLES and min(held_out_ids) < 400 and max(held_out_ids) > 1200
    assert plan.trained_on() == {"new": 150, "replay": 150, "held_out": 50}


def test_one_run_in_train_full_every_retrains_from_the_base_counting_runs_not_the_versions_lineage():
    ninth = plan_run(CONFIG, adapter_version(30, runs_since_base=8), SPLIT, 30, since_from_base=8)
    # the last retrain was rejected: its count restarts though the active version's lineage is 9 deep
    after_rejected_retrain = plan_run(CONFIG, adapter_version(30, runs_since_base=9), SPLIT, 30, since_from_base=0)
    tenth = plan_run(CONFIG, adapter_version(30, runs_since_base=3), SPLIT, 30, since_from_base=9)

    assert ninth.kind == "incremental" and after_rejected_retrain.kind == "incremental"
    assert after_rejected_retrain.runs_since_base == 10
    assert tenth.kind == "from_base" and "TRAIN_FULL_EVERY is 10" in tenth.reason
