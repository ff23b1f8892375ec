"""python -m trainer: train, worker, export, models, activate, status."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from config import ConfigError, Settings, configure_logging
from trainer.registry import Registry, RegistryError

TRAINING_PACKAGES = "torch, transformers, peft, datasets"


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run one command; the exit code says how it went."""
    parser = argparse.ArgumentParser(prog="python -m trainer", description="Distil logged conversations into a local model.")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="fine-tune a new version now")
    train.add_argument("--force", action="store_true", help="train even below AUTO_TRAIN_THRESHOLD new replies")
    train.add_argument("--trigger", default="manual", choices=("manual", "auto", "admin"))
    train.add_argument("--run-id", type=int, help=argparse.SUPPRESS)  # set by the scheduler, which holds the lease
    train.add_argument("--nice", type=int, default=0, help=argparse.SUPPRESS)
    train.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)
    commands.add_parser("worker", help="watch the data and train whenever AUTO_TRAIN_THRESHOLD is reached")
    export = commands.add_parser("export", help="write the training examples as chat JSONL")
    export.add_argument("--out", required=True, type=Path)
    commands.add_parser("models", help="list versions with their metrics; the active one is marked")
    activate = commands.add_parser("activate", help="make VERSION active (promote or roll back)")
    activate.add_argument("version")
    commands.add_parser("status", help="recent runs, the active version, data against the threshold")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        configure_logging(settings.log_level)
        return COMMANDS[args.command](settings, args)
    except (ConfigError, RegistryError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ImportError as e:
        print(f"error: training needs {TRAINING_PACKAGES} ({e.name} is missing): "
              "pip install -r requirements-training.txt", file=sys.stderr)
        return 2


def cmd_train(settings: Settings, args) -> int:
    """Run one training now: under the training lease, or as the child of a scheduler that holds it."""
    if args.nice:
        os.nice(args.nice)
    if args.parent_pid:
        _exit_with_parent(args.parent_pid)
    from trainer.finetune import TrainerError  # imports torch
    from trainer.pipeline import run_training
    from trainer.scheduler import Scheduler, TrainingBusy

    try:
        if args.run_id is not None:
            run_id = run_training(settings, run_id=args.run_id, force=args.force)
        else:
            with Scheduler(settings, _database(settings)).lease_held():
                run_id = run_training(settings, trigger=args.trigger, force=args.force)
    except (TrainerError, TrainingBusy) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"training run {run_id} finished")
    return 0


def cmd_worker(settings: Settings, _args) -> int:
    """The web workers' trigger-and-train loop as a process of its own, until SIGTERM."""
    from trainer.scheduler import POLL_SECONDS, Scheduler

    scheduler = Scheduler(settings, _database(settings))
    signal.signal(signal.SIGTERM, lambda *_: scheduler.stop())
    logging.getLogger(__name__).info("Training worker started: AUTO_TRAIN_THRESHOLD %d, checking every %.0fs",
                                     settings.auto_train_threshold, POLL_SECONDS)
    scheduler.run_forever()
    return 0


def cmd_export(settings: Settings, args) -> int:
    """Write the redacted examples to a JSONL file."""
    from storage.repo import Repo
    from trainer.dataset import export_jsonl, load_split

    engine = _database(settings)
    split = load_split(Repo(engine), settings.history_turns, settings.train.eval_fraction)
    count = export_jsonl(split, args.out)
    print(f"wrote {count} examples to {args.out}")
    return 0


def cmd_models(settings: Settings, _args) -> int:
    """Print the versions, newest first."""
    registry = Registry.from_settings(settings)
    active = registry.active()
    versions = registry.versions()
    if not versions:
        print(f"no model versions in {registry.root}")
    for v in versions:
        metrics = v.metadata.get("metrics", {})
        mark = "*" if active and v.name == active.name else " "
        state = "rejected" if v.rejected else "ok"
        print(f"{mark} {v.name}  {state:8}  eval_loss={_fmt(metrics.get('candidate_loss'))}  "
              f"base={_fmt(metrics.get('base_loss'))}  examples={v.metadata.get('examples', {}).get('train')}")
    return 0


def cmd_activate(settings: Settings, args) -> int:
    """Point ACTIVE at a version."""
    version = Registry.from_settings(settings).activate(args.version)
    print(f"active: {version.name}")
    return 0


def cmd_status(settings: Settings, _args) -> int:
    """Recent runs, the active version, and eligible data against the threshold, as JSON."""
    from storage.repo import Repo
    from storage.training_runs import TrainingRuns
    from trainer.scheduler import eligible_since_last_training

    engine = _database(settings)
    runs = TrainingRuns(engine)
    active = Registry.from_settings(settings).active()
    print(json.dumps({
        "active_version": active.name if active else None,
        "eligible_since_last_training": eligible_since_last_training(Repo(engine), runs),
        "auto_train_threshold": settings.auto_train_threshold,
        "runs": [{"id": r.id, "status": r.status, "trigger": r.trigger, "step": r.step, "total_steps": r.total_steps,
                  "loss": r.loss, "version": r.version, "error": r.error} for r in runs.recent(5)],
    }, indent=2, default=str))
    return 0


def _exit_with_parent(parent_pid: int) -> None:
    """A child whose supervisor died stops too: nobody would renew its lease or record its end."""

    def watch():
        while os.getppid() == parent_pid:
            time.sleep(2)
        print("error: the supervising process is gone; stopping training", file=sys.stderr)
        os._exit(3)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _database(settings: Settings):
    """The service's database, migrated to the current schema."""
    from storage import migrate
    from storage.engine import make_engine

    engine = make_engine(settings.database_url)
    migrate.upgrade(engine)
    return engine


def _fmt(value) -> str:
    """A loss to four places, or a dash."""
    return "-" if value is None else f"{value:.4f}"


COMMANDS = {"train": cmd_train, "worker": cmd_worker, "export": cmd_export, "models": cmd_models, "activate": cmd_activate,
            "status": cmd_status}

if __name__ == "__main__":
    sys.exit(main())
