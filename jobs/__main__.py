"""python -m jobs: the training commands that hold the lease or read the policy.

`python -m trainer` hands `worker`, `status` and `train` (without --run-id) over to
this module, so operators have one command line.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys

from config import Settings, cli_settings
from jobs.policy import Policy
from jobs.supervisor import Supervisor, TrainingBusy, TrainingRefused
from jobs.trigger import POLL_SECONDS, Trigger
from registry.registry import Registry
from registry.versions import RegistryError
from storage.migrate import migrated_engine
from storage.training_runs import run_json
from telemetry import exposition

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run one command; the exit code says how it went."""
    parser = argparse.ArgumentParser(prog="python -m trainer", description="Supervised training runs.")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="fine-tune a new version now, under the training lease")
    train.add_argument("--force", action="store_true", help="train even below AUTO_TRAIN_THRESHOLD new replies")
    train.add_argument("--from-base", action="store_true",
                       help="retrain from the base model on the whole history instead of continuing the active version")
    train.add_argument("--trigger", default="manual", choices=("manual", "auto", "admin"))
    commands.add_parser("worker", help="watch the data and train whenever AUTO_TRAIN_THRESHOLD is reached")
    commands.add_parser("status", help="recent runs, the active version, data against the threshold")
    args = parser.parse_args(argv)
    settings = cli_settings()
    try:
        return COMMANDS[args.command](settings, args)
    except RegistryError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def cmd_train(settings: Settings, args) -> int:
    """Claim a run and supervise its training process here, in the foreground; its exit code is ours."""
    supervisor = Supervisor(settings, migrated_engine(settings.database_url))
    try:
        run_id = supervisor.claim_asked(args.force, args.from_base, args.trigger)
    except (TrainingRefused, TrainingBusy) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: supervisor.stop())
    code = supervisor.supervise(run_id)
    if code == 0:
        print(f"training run {run_id} finished: {supervisor.runs.get(run_id).status}")
    return 1 if code is None else code


def cmd_worker(settings: Settings, _args) -> int:
    """The web workers' trigger-and-train loop as a process of its own, until SIGTERM; its metrics (the runs it
    supervised) on METRICS_PORT when that is set."""
    trigger = Trigger.from_settings(settings, migrated_engine(settings.database_url))
    if settings.metrics_port:
        exposition.serve(settings.metrics_port, settings.metrics_token)
    signal.signal(signal.SIGTERM, lambda *_: trigger.stop())
    log.info("Training worker started: AUTO_TRAIN_THRESHOLD %d, checking every %.0fs",
             settings.auto_train_threshold, POLL_SECONDS)
    trigger.run_forever()
    return 0


def cmd_status(settings: Settings, _args) -> int:
    """Recent runs, the active version, and eligible data against the threshold, as JSON."""
    engine = migrated_engine(settings.database_url)
    policy = Policy(settings, engine)
    print(json.dumps({
        "active_version": Registry.from_settings(settings, engine).active_name(),
        "eligible_since_last_training": policy.eligible_since_last_training(),
        "auto_train_threshold": settings.auto_train_threshold,
        "runs": [run_json(r) for r in policy.runs.recent(5)],
    }, indent=2, default=str))
    return 0


COMMANDS = {"train": cmd_train, "worker": cmd_worker, "status": cmd_status}

if __name__ == "__main__":
    sys.exit(main())
