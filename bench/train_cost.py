"""Seconds from the threshold to a new active version, as the history grows: incremental runs.

For each history size (1k, 5k, 20k eligible replies in synthetic conversations), a fresh
SQLite database holds the history and an active adapter version trained "up to" its last
message (a fresh LoRA adapter on SmolLM2-135M's shape with random weights, recorded as a
completed run), then 100 new replies arrive. `python -m trainer train` runs as an operator
would start it (the supervisor, its training child, evaluation, saving, promotion); the
figure is its wall time. The run continues the active adapter on the 100 new replies plus
as many replayed, so only the work that depends on the history (reading, redacting and
splitting it, sampling the held-out set) should grow with it.

To keep the three runs within minutes, replies are short, one epoch, and each version reads
two held-out prompts: the fixed part of a run is smaller than at the defaults, which makes
any growth with the history show more, not less. Also prints the size of an adapter version
on disk against the same version with merged weights. Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.train_throughput import WORDS, build  # noqa: E402

NEW_REPLIES = 100
TURNS_PER_CONVERSATION = 5
RUN_ENV = {"TRAIN_EPOCHS": "1", "TRAIN_EVAL_REPLIES": "2", "AUTO_TRAIN_THRESHOLD": str(NEW_REPLIES)}


def sentence(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high))).capitalize() + "."


def add_history(chats, replies: int, rng: random.Random) -> None:
    """``replies`` Groq replies with consent, in conversations of up to five turns."""
    session_id = None
    for n in range(replies):
        if n % TURNS_PER_CONVERSATION == 0:
            session_id = None
        turn = chats.start_turn(session_id, "patient", None, True, True, f"{n}: {sentence(rng, 4, 16)}", "none")
        session_id = turn.session_id
        chats.store_reply(session_id, "none", content=sentence(rng, 8, 30), source="groq", model="bench", status="ok")


def activate_parent(database_url: str, model_dir: Path, base: Path, watermark: int) -> None:
    """A fresh adapter version, recorded as trained up to ``watermark`` by a completed run, and active."""
    from config import RunConfig, Settings
    from registry.registry import Registry
    from storage.migrate import migrated_engine
    from storage.training_runs import TrainingRuns
    from trainer.finetune import load_base, wrap_for_training

    settings = Settings.from_env({**os.environ, "DATABASE_URL": database_url, "MODEL_DIR": str(model_dir),
                                  "BASE_MODEL": str(base), **RUN_ENV})
    tokenizer, model = load_base(str(base))
    model = wrap_for_training(model, settings.train)  # a fresh adapter, as a first run starts
    engine = migrated_engine(database_url)
    runs, registry = TrainingRuns(engine), Registry.from_settings(settings, engine)
    run = runs.start("manual", RunConfig.from_settings(settings).to_dict())
    version = registry.save(lambda folder: (model.save_pretrained(folder), tokenizer.save_pretrained(folder)), {
        "run_id": run.id, "base_model": str(base), "weights": "adapter", "parent": None, "runs_since_base": 0,
        "watermark": watermark, "settings": RunConfig.from_settings(settings).to_dict(), "gate": {"passed": True}})
    registry.activate(version.name)
    runs.finish(run.id, "succeeded", version=version.name, watermark=watermark)
    engine.dispose()


def one_case(history: int, base: Path, tmp: Path) -> dict:
    """Seconds from the threshold to the new version, with ``history`` replies before the 100 new ones."""
    from storage.conversations import Conversations
    from storage.migrate import migrated_engine
    from storage.training_runs import TrainingRuns

    folder = tmp / f"history-{history}"
    folder.mkdir()
    database_url, model_dir = f"sqlite:///{folder}/chat.db", folder / "models"
    engine = migrated_engine(database_url)
    chats, rng = Conversations(engine), random.Random(history)
    add_history(chats, history, rng)
    activate_parent(database_url, model_dir, base, _newest_id(engine))
    add_history(chats, NEW_REPLIES, rng)
    env = {**os.environ, "DATABASE_URL": database_url, "MODEL_DIR": str(model_dir), "BASE_MODEL": str(base),
           **RUN_ENV}
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "trainer", "train"], cwd=ROOT, env=env, capture_output=True,
                            text=True)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        raise SystemExit(f"training with {history} replies of history failed:\n{result.stderr[-3000:]}")
    run = TrainingRuns(engine).recent(1)[0]
    engine.dispose()
    version = model_dir / run.version
    metadata = json.loads((version / "metadata.json").read_text())
    return {"history": history, "seconds": round(seconds, 1), "status": run.status, "kind": run.kind,
            "trained_on": metadata["trained_on"], "eval_examples": run.eval_examples, "version": version}


def _newest_id(engine) -> int:
    """The id of the newest message: the parent version's watermark."""
    from sqlalchemy import func, select

    from storage.tables import Message

    with engine.connect() as db:
        return db.scalar(select(func.max(Message.id)))


def folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file()) / 1e6


def version_sizes(version: Path) -> dict:
    """An adapter version's files against the same version saved with merged weights."""
    from assistant.local_model import load_version

    tokenizer, model = load_version(version)
    with tempfile.TemporaryDirectory() as merged:
        model.save_pretrained(merged)
        tokenizer.save_pretrained(merged)
        merged_mb = folder_mb(Path(merged))
    adapter_mb = folder_mb(version)
    return {"adapter_version_mb": round(adapter_mb, 1), "merged_version_mb": round(merged_mb, 1),
            "ratio": round(adapter_mb / merged_mb, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--histories", type=int, nargs="+", default=[1000, 5000, 20000])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "smollm2-135m-shape"
        build(base)
        cases = [one_case(history, base, Path(tmp)) for history in args.histories]
        sizes = version_sizes(cases[-1]["version"])
    for case in cases:
        case.pop("version")
    print(json.dumps({
        "benchmark": "train_cost", "model": "SmolLM2-135M shape, random weights", "new_replies": NEW_REPLIES,
        "settings": RUN_ENV, "cases": cases,
        "ratio_largest_to_smallest": round(cases[-1]["seconds"] / cases[0]["seconds"], 2),
        "version_size": sizes, "goal": {"ratio_largest_to_smallest_at_most": 1.3},
    }, indent=2))


if __name__ == "__main__":
    main()
