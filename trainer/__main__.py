"""python -m trainer: train, worker, export, models, activate, status.

This module runs the training child (`train --run-id N`, started by a supervisor
that holds the lease) and the commands that need no lease. `worker`, `status` and a
manual `train` are the supervisor's: they are handed over to `python -m jobs`.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

from config import cli_settings, database_url_from_env
from registry.registry import Registry
from registry.versions import RegistryError, version_json
from storage.migrate import migrated_engine
from telemetry.logs import configure_logging

TRAINING_PACKAGES = "torch, transformers, peft, datasets"
SUPERVISOR_COMMANDS = ("worker", "status")


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run one command; the exit code says how it went."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if _for_supervisor(argv):
        # The lease, the run record and the trigger loop live in jobs/, which the training child never imports.
        os.execv(sys.executable, [sys.executable, "-m", "jobs", *argv])
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except RegistryError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ImportError as e:
        print(f"error: training needs {TRAINING_PACKAGES} ({e.name} is missing): "
              "pip install -r requirements-training.txt", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    """The commands; those of the supervisor are listed for --help and parsed by `python -m jobs`."""
    parser = argparse.ArgumentParser(prog="python -m trainer", description="Distil logged conversations into a local model.")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="fine-tune a new version now [--force] [--from-base] "
                                              "(under the training lease)")
    train.add_argument("--run-id", type=int, required=True, help=argparse.SUPPRESS)  # the supervisor's claimed run
    train.add_argument("--nice", type=int, default=0, help=argparse.SUPPRESS)
    train.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)
    commands.add_parser("worker", help="watch the data and train whenever AUTO_TRAIN_THRESHOLD is reached")
    export = commands.add_parser("export", help="write the training examples as chat JSONL")
    export.add_argument("--out", required=True, type=Path)
    commands.add_parser("models", help="list versions with their metrics; the active one is marked")
    activate = commands.add_parser("activate", help="make VERSION active (promote or roll back)")
    activate.add_argument("version")
    commands.add_parser("status", help="recent runs, the active version, data against the threshold")
    return parser


def _for_supervisor(argv: list[str]) -> bool:
    """Commands that take the lease or read the policy: worker, status, and train unless it is the child."""
    command = argv[0] if argv else None
    is_child = any(a == "--run-id" or a.startswith("--run-id=") for a in argv)
    return command in SUPERVISOR_COMMANDS or (command == "train" and not is_child)


def cmd_train(args) -> int:
    """The training child: train the claimed run with the settings in its record."""
    if args.nice:
        os.nice(args.nice)
    if args.parent_pid:
        _exit_with_parent(args.parent_pid)
    configure_logging("INFO")  # until the run record says which level and format the service logs with
    from trainer.finetune import TrainerError  # imports torch
    from trainer.pipeline import run_training

    try:
        status = run_training(database_url_from_env(), args.run_id)
    except TrainerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"training run {args.run_id} finished: {status}")
    return 0


def cmd_export(args) -> int:
    """Write the redacted examples to a JSONL file."""
    from storage.training_data import TrainingData
    from trainer.dataset import export_jsonl, load_split

    settings = cli_settings()
    split = load_split(TrainingData(migrated_engine(settings.database_url)), settings.history_turns,
                       settings.train.eval_fraction)
    count = export_jsonl(split, args.out)
    print(f"wrote {count} examples to {args.out}")
    return 0


def cmd_models(_args) -> int:
    """Print the versions, newest first."""
    registry = _registry()
    active = registry.active()
    versions = [version_json(v, active) for v in registry.versions()]
    if not versions:
        print(f"no model versions in {registry.location}")
    for v in versions:
        metrics = v["metrics"]
        state = "rejected" if v["rejected"] else "ok"
        print(f"{'*' if v['active'] else ' '} {v['name']}  {state:8}  eval_loss={_fmt(metrics.get('candidate_loss'))}  "
              f"base={_fmt(metrics.get('base_loss'))}  examples={v['examples'].get('train')}")
    return 0


def cmd_activate(args) -> int:
    """Make a version the active one, for every process that reads the database."""
    version = _registry().activate(args.version)
    print(f"active: {version.name}")
    return 0


def _registry() -> Registry:
    """The versions of MODEL_DIR or MODEL_STORE_URL, with the database's active pointer."""
    settings = cli_settings()
    return Registry.from_settings(settings, migrated_engine(settings.database_url))


def _exit_with_parent(parent_pid: int) -> None:
    """A child whose supervisor died stops too: nobody would renew its lease or record its end."""

    def watch():
        while os.getppid() == parent_pid:
            time.sleep(2)
        print("error: the supervising process is gone; stopping training", file=sys.stderr)
        os._exit(3)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _fmt(value) -> str:
    """A loss to four places, or a dash."""
    return "-" if value is None else f"{value:.4f}"


COMMANDS = {"train": cmd_train, "export": cmd_export, "models": cmd_models, "activate": cmd_activate}

if __name__ == "__main__":
    sys.exit(main())
