"""One training run, start to end: data, fine-tune, evaluate, save, promote or reject, record.

The run was claimed by a supervisor, which wrote how to make it (``config.RunConfig``)
into the run record: that record, not the environment, says what to train.
"""

from __future__ import annotations

import gc
import logging
import shutil
import time
from contextlib import nullcontext
from importlib.metadata import version as package_version
from pathlib import Path

from assistant.local_model import load_version
from assistant.safety.screener import Screener
from config import RunConfig, TrainSettings
from embeddings.model import shared_embedder
from hardware import set_torch_threads
from registry.registry import Registry
from registry.versions import RegistryError, Version
from storage.migrate import migrated_engine
from storage.training_data import NO_ELIGIBLE_REPLIES, TrainingData
from storage.training_runs import TrainingRuns
from telemetry.logs import configure_logging
from trainer.dataset import Split, keep_sides, load_split, to_datasets, without_near_duplicates
from trainer.evaluate import Verdict, eval_loss, gate
from trainer.finetune import TrainerError, load_base, saved_adapter, train, wrap_for_training
from trainer.judge import HeldOutPrompts, summary
from trainer.plan import RunPlan, plan_run
from trainer.tokens import Features, render

log = logging.getLogger(__name__)
LIBRARIES = ("torch", "transformers", "peft", "datasets", "safetensors")


def run_training(database_url: str, run_id: int) -> str:
    """Train the claimed run ``run_id``; returns its outcome. Raises TrainerError with advice when it cannot run."""
    engine = migrated_engine(database_url)
    runs = TrainingRuns(engine)
    try:
        config = _claimed_config(runs, run_id)
        configure_logging(config.log_level, config.log_format)
        registry = Registry.from_settings(config, engine)
        embedder, error = shared_embedder(config.embeddings_dir)
        if embedder is None:
            log.warning("Near-duplicate examples are kept and replies are not compared with Groq's: "
                        "the sentence-embedding model did not load (%s)", error)
        active = registry.active()
        plan = plan_run(config, active, _examples(config, TrainingData(engine), registry), runs.last_watermark(),
                        runs.completed_since_from_base())
        log.info("Training run %s: %s (%s)", run_id, plan.kind, plan.reason)
        runs.update(run_id, kind=plan.kind)
        plan = plan.with_split(_without_near_duplicates(embedder, runs, run_id, plan.split))
        held_out = HeldOutPrompts.for_run(plan.split.eval, config.train, Screener.load(config.embeddings_dir), embedder)
        outcome = _train_and_register(config, runs, registry, plan, active, run_id, held_out)
        runs.finish(run_id, **outcome)
        return outcome["status"]
    except (TrainerError, RegistryError) as e:  # their messages are advice for the admin as they stand
        runs.fail_if_running(run_id, str(e)[-2000:])
        raise
    except BaseException as e:
        runs.fail_if_running(run_id, f"{type(e).__name__}: {e}"[-2000:])
        raise
    finally:
        engine.dispose()


def _claimed_config(runs: TrainingRuns, run_id: int) -> RunConfig:
    """The settings in the record of a run that is waiting for this process."""
    run = runs.get(run_id)
    if run is None or run.status != "running" or not run.config:
        raise TrainerError(f"Training run {run_id} is not a claimed, running run with settings; "
                           "start training with `python -m trainer train` or from the admin API.")
    return RunConfig.from_dict(run.config)


def _examples(config: RunConfig, training_data: TrainingData, registry: Registry) -> Split:
    """The redacted, split examples; refuses when there is nothing to learn from or nowhere to save."""
    registry.check_writable()
    split = load_split(training_data, config.history_turns, config.train.eval_fraction)
    if not split.train:
        raise TrainerError(NO_ELIGIBLE_REPLIES)
    keep_sides(training_data, split)
    return split


def _without_near_duplicates(embedder, runs: TrainingRuns, run_id: int, split: Split) -> Split:
    """The split without near-duplicate examples, their count in the run record; all of it without the model."""
    if embedder is None:
        return split
    kept, dropped = without_near_duplicates(split, embedder)
    log.info("Dropped %d near-duplicate examples of %d", dropped, len(split.train) + len(split.eval))
    runs.update(run_id, near_duplicates=dropped)
    if not kept.train:
        raise TrainerError(NO_ELIGIBLE_REPLIES)
    return kept


def _train_and_register(config: RunConfig, runs: TrainingRuns, registry: Registry, plan: RunPlan,
                        active: Version | None, run_id: int, held_out: HeldOutPrompts) -> dict:
    """Fine-tune, compare with the active version and the base model, save; the fields that close the run."""
    started = time.monotonic()
    ts, split = config.train, plan.split
    threads = set_torch_threads(ts.threads)
    log.info("Training run %s: %d train and %d eval examples, %d threads",
             run_id, len(split.train), len(split.eval), threads)
    runs.update(run_id, train_examples=len(split.train), eval_examples=len(split.eval), watermark=plan.watermark)
    active_loss, active_replies = _read_version(registry.local(active), active.name, split, ts, held_out) \
        if active else (None, None)
    tokenizer, model = load_base(config.base_model)
    train_features, eval_features = _tokenised(tokenizer, split, ts.max_seq_len)
    base_loss = eval_loss(model, eval_features, tokenizer.pad_token_id, ts.batch_tokens, ts.bf16)
    model = wrap_for_training(model, ts, registry.local(plan.parent) if plan.parent else None)
    result = train(model, train_features, tokenizer.pad_token_id, ts, _progress_reporter(runs, run_id))
    candidate_loss = eval_loss(model, eval_features, tokenizer.pad_token_id, ts.batch_tokens, ts.bf16)
    files = None if ts.full_finetune else saved_adapter(model, tokenizer)
    model = _ready_to_generate(model if files is None else model.merge_and_unload())  # merged, as served
    evaluation = held_out.evaluate("candidate", model, tokenizer)
    log.info("Held-out replies read: %d, similarity %s, unsafe %d, degenerate %d", evaluation["examples"],
             evaluation["similarity"], evaluation["unsafe"], evaluation["degenerate"])
    verdict = gate(candidate_loss, active_loss, base_loss, evaluation, active_replies, ts.similarity_margin)
    if active_replies is not None:
        evaluation["active"] = summary(active.name, active_replies)
    metrics = {"base_loss": base_loss, "active_loss": active_loss, "candidate_loss": candidate_loss,
               "train_loss": result.final_loss, "steps": result.steps, "supervised_tokens": result.supervised_tokens}
    metadata = {"run_id": run_id, "base_model": config.base_model, "active_at_start": active.name if active else None,
                "kind": plan.kind, "kind_reason": plan.reason, "parent": plan.parent and plan.parent.name,
                "runs_since_base": plan.runs_since_base, "trained_on": plan.trained_on(),
                "weights": "full" if files is None else "adapter",
                "examples": {"train": len(train_features), "eval": len(eval_features)}, "watermark": plan.watermark,
                "metrics": metrics, "evaluation": evaluation,
                "gate": {"passed": verdict.promote, "reason": verdict.reason},
                "duration_s": round(time.monotonic() - started, 1), "settings": config.to_dict(),
                "libraries": {name: package_version(name) for name in LIBRARIES}}
    with files or nullcontext() as adapter_folder:
        version = registry.save(lambda folder: _write_version(folder, model, tokenizer, adapter_folder), metadata)
    _promote_or_keep(registry, version, verdict)
    log.info("Training complete (%.1fs)", time.monotonic() - started)
    return {"status": "succeeded" if verdict.promote else "rejected", "version": version.name,
            "base_loss": base_loss, "active_loss": active_loss, "candidate_loss": candidate_loss,
            "error": None if verdict.promote else verdict.reason}


def _write_version(folder: Path, model, tokenizer, adapter_folder: str | None) -> None:
    """The adapter's files and the tokenizer when there is an adapter (the merged model stays in memory),
    else the full weights and the tokenizer."""
    if adapter_folder is None:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        return
    for path in Path(adapter_folder).iterdir():
        shutil.copy2(path, folder / path.name)


def _tokenised(tokenizer, split: Split, max_len: int) -> tuple[list[Features], list[Features]]:
    """The train and eval examples as token features."""
    data = to_datasets(split)
    train_features = _features(tokenizer, data["train"]["messages"], max_len)
    eval_features = _features(tokenizer, data["eval"]["messages"], max_len) if len(data["eval"]) else []
    return train_features, eval_features


def _features(tokenizer, conversations: list[list[dict]], max_len: int) -> list[Features]:
    """Tokenised examples, leaving out any whose prompt alone fills the window."""
    rendered = (render(tokenizer, messages, max_len) for messages in conversations)
    return [f for f in rendered if f is not None]


def _ready_to_generate(model):
    """The fine-tuned weights, set up to generate as a saved version will."""
    model.activation_checkpointing_disable()
    model.config.use_cache = True
    return model.eval()


def _promote_or_keep(registry: Registry, version: Version, verdict: Verdict) -> None:
    """Activate a version that passed the gate, keep a rejected one for the record; prune old versions."""
    if verdict.promote:
        registry.activate(version.name)
    else:
        log.info("Model rejected: %s (kept as %s)", verdict.reason, version.name)
    registry.prune()


def _read_version(path, name: str, split: Split, ts: TrainSettings,
                  held_out: HeldOutPrompts) -> tuple[float | None, dict]:
    """Eval loss and held-out replies of a saved version, freed again before the base model is loaded."""
    tokenizer, model = load_version(path, lambda base: load_base(base)[1])
    features = _features(tokenizer, [e.messages for e in split.eval], ts.max_seq_len)
    loss = eval_loss(model, features, tokenizer.pad_token_id, ts.batch_tokens, ts.bf16)
    replies = held_out.evaluate(name, model, tokenizer)
    del model
    gc.collect()
    return loss, replies


def _progress_reporter(runs: TrainingRuns, run_id: int):
    """Record every step in the run; log about twenty lines per run."""

    def report(step: int, total: int, loss: float, eta_s: float) -> None:
        runs.progress(run_id, step, total, loss, eta_s)
        if step == total or step % max(1, total // 20) == 0:
            log.info("Training step %d/%d loss %.4f ETA %.0fs", step, total, loss, eta_s)

    return report
