"""One training run, start to end: data, fine-tune, evaluate, save, promote or reject, record."""

from __future__ import annotations

import gc
import logging
import time
from dataclasses import asdict
from importlib.metadata import version as package_version

from config import Settings
from hardware import set_torch_threads
from storage import migrate
from storage.engine import make_engine
from storage.repo import Repo
from storage.training_runs import TrainingRuns
from trainer.dataset import Split, load_split, to_datasets
from trainer.evaluate import eval_loss, gate
from trainer.finetune import TrainerError, load_base, train, wrap_for_training
from trainer.registry import Registry
from trainer.scheduler import eligible_since_last_training
from trainer.tokens import Features, render

log = logging.getLogger(__name__)
LIBRARIES = ("torch", "transformers", "peft", "datasets", "safetensors")


def run_training(settings: Settings, run_id: int | None = None, trigger: str = "manual", force: bool = False) -> int:
    """Train a new version; returns the run id. Raises TrainerError with advice when it cannot run."""
    engine = make_engine(settings.database_url)
    migrate.upgrade(engine)
    repo, runs = Repo(engine), TrainingRuns(engine)
    registry = Registry.from_settings(settings)
    try:
        registry.check_writable()
        split = load_split(repo, settings.history_turns, settings.train.eval_fraction)
        _check_enough_data(settings, repo, runs, split, force)
    except Exception as e:
        if run_id is not None:  # the supervisor made a record for this run: close it
            runs.finish(run_id, "failed", error=str(e))
        engine.dispose()
        raise
    run_id = run_id or runs.start(trigger).id
    try:
        outcome = _train_and_register(settings, runs, registry, split, run_id)
        runs.finish(run_id, **outcome)
        return run_id
    except BaseException as e:
        runs.finish(run_id, "failed", error=f"{type(e).__name__}: {e}"[-2000:])
        raise
    finally:
        engine.dispose()


def _check_enough_data(settings: Settings, repo: Repo, runs: TrainingRuns, split: Split, force: bool) -> None:
    """Refuse with a clear sentence when there is nothing (new enough) to learn from."""
    if not split.train:
        raise TrainerError("No eligible conversations to train on yet: training needs Groq replies, "
                           "in conversations with training consent, on calm turns.")
    new = eligible_since_last_training(repo, runs)
    if not force and new < settings.auto_train_threshold:
        raise TrainerError(f"Only {new} new eligible replies since the last training; AUTO_TRAIN_THRESHOLD is "
                           f"{settings.auto_train_threshold}. Use --force to train anyway.")


def _train_and_register(settings: Settings, runs: TrainingRuns, registry: Registry, split: Split, run_id: int) -> dict:
    """The heavy part: returns the fields that close the run record."""
    started = time.monotonic()
    ts = settings.train
    threads = set_torch_threads(ts.threads)
    log.info("Training run %s: %d train and %d eval examples, %d threads",
             run_id, len(split.train), len(split.eval), threads)
    runs.update(run_id, train_examples=len(split.train), eval_examples=len(split.eval), watermark=split.watermark)
    active = registry.active()
    active_loss = _version_loss(active.path, split, ts) if active else None
    tokenizer, model = load_base(settings.base_model)
    data = to_datasets(split)
    train_features = _features(tokenizer, data["train"]["messages"], ts.max_seq_len)
    eval_features = _features(tokenizer, data["eval"]["messages"], ts.max_seq_len) if len(data["eval"]) else []
    base_loss = eval_loss(model, eval_features, tokenizer.pad_token_id, ts.batch_tokens, ts.bf16)
    model = wrap_for_training(model, ts)
    result = train(model, train_features, tokenizer.pad_token_id, ts, _progress_reporter(runs, run_id))
    candidate_loss = eval_loss(model, eval_features, tokenizer.pad_token_id, ts.batch_tokens, ts.bf16)
    verdict = gate(candidate_loss, active_loss, base_loss)
    merged = model if ts.full_finetune else model.merge_and_unload()
    merged.activation_checkpointing_disable()
    merged.config.use_cache = True
    metrics = {"base_loss": base_loss, "active_loss": active_loss, "candidate_loss": candidate_loss,
               "train_loss": result.final_loss, "steps": result.steps, "supervised_tokens": result.supervised_tokens}
    version = registry.save(
        lambda folder: (merged.save_pretrained(folder), tokenizer.save_pretrained(folder)),
        {"run_id": run_id, "base_model": settings.base_model, "active_at_start": active.name if active else None,
         "examples": {"train": len(train_features), "eval": len(eval_features)}, "watermark": split.watermark,
         "metrics": metrics, "gate": {"passed": verdict.promote, "reason": verdict.reason},
         "duration_s": round(time.monotonic() - started, 1), "settings": asdict(ts),
         "libraries": {name: package_version(name) for name in LIBRARIES}},
    )
    if verdict.promote:
        registry.activate(version.name)
    else:
        log.info("Model rejected: %s (kept as %s)", verdict.reason, version.name)
    registry.prune()
    log.info("Training complete (%.1fs)", time.monotonic() - started)
    return {"status": "succeeded" if verdict.promote else "rejected", "version": version.name,
            "base_loss": base_loss, "active_loss": active_loss, "candidate_loss": candidate_loss,
            "error": None if verdict.promote else verdict.reason}


def _features(tokenizer, conversations: list[list[dict]], max_len: int) -> list[Features]:
    """Tokenised examples, leaving out any whose prompt alone fills the window."""
    rendered = (render(tokenizer, messages, max_len) for messages in conversations)
    return [f for f in rendered if f is not None]


def _version_loss(path, split: Split, ts) -> float | None:
    """Eval loss of a saved version, freed again before the base model is loaded."""
    tokenizer, model = load_base(str(path))
    features = _features(tokenizer, [e.messages for e in split.eval], ts.max_seq_len)
    loss = eval_loss(model, features, tokenizer.pad_token_id, ts.batch_tokens, ts.bf16)
    del model
    gc.collect()
    return loss


def _progress_reporter(runs: TrainingRuns, run_id: int):
    """Record every step in the run; log about twenty lines per run."""

    def report(step: int, total: int, loss: float, eta_s: float) -> None:
        runs.progress(run_id, step, total, loss, eta_s)
        if step == total or step % max(1, total // 20) == 0:
            log.info("Training step %d/%d loss %.4f ETA %.0fs", step, total, loss, eta_s)

    return report
