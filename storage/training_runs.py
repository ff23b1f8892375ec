"""The record of training runs: created, updated with progress, closed with an outcome."""

from __future__ import annotations

from sqlalchemy import desc, func, or_, select, update

from storage.tables import TrainingRun, utcnow
from storage.transactions import Transactional

FINISHED = ("succeeded", "rejected", "failed")
# A rejected run trained on its data too: its watermark counts, or every
# rejection would trigger the same run again at once.
COMPLETED = ("succeeded", "rejected")
# What the admin API and the CLI show of a run.
RUN_FIELDS = ("id", "status", "trigger", "started_at", "finished_at", "duration_s", "step", "total_steps", "loss",
              "eta_s", "losses", "train_examples", "eval_examples", "base_loss", "active_loss", "candidate_loss",
              "version", "error", "near_duplicates", "kind")


class TrainingRuns(Transactional):
    """Short transactions over the training_runs table."""

    def start(self, trigger: str, config: dict) -> TrainingRun:
        """Record a new run as running, with the settings its training process will read."""
        with self._write() as db:
            run = TrainingRun(status="running", trigger=trigger, step=0, losses=[], config=config)
            db.add(run)
            db.flush()
            return run

    def get(self, run_id: int) -> TrainingRun | None:
        """One run by id."""
        with self._read() as db:
            return db.get(TrainingRun, run_id)

    def recent(self, limit: int = 20) -> list[TrainingRun]:
        """The newest runs first."""
        with self._read() as db:
            return list(db.scalars(select(TrainingRun).order_by(desc(TrainingRun.id)).limit(limit)))

    def update(self, run_id: int, **fields) -> None:
        """Set fields of a run (progress, counts, losses)."""
        with self._write() as db:
            db.execute(update(TrainingRun).where(TrainingRun.id == run_id).values(**fields))

    def progress(self, run_id: int, step: int, total_steps: int, loss: float, eta_s: float) -> None:
        """Record a training step and append its loss to the run's curve."""
        with self._write() as db:
            run = db.get(TrainingRun, run_id)
            run.step, run.total_steps, run.loss, run.eta_s = step, total_steps, loss, eta_s
            run.losses = [*(run.losses or []), [step, round(loss, 5)]]

    def finish(self, run_id: int, status: str, **fields) -> None:
        """Close a run with its outcome; the duration is measured from its start."""
        assert status in FINISHED, status
        with self._write() as db:
            _close(db.get(TrainingRun, run_id), status, **fields)

    def running(self) -> TrainingRun | None:
        """The newest run still marked running."""
        with self._read() as db:
            return db.scalars(select(TrainingRun).where(TrainingRun.status == "running")
                              .order_by(desc(TrainingRun.id)).limit(1)).first()

    def latest_finished(self) -> TrainingRun | None:
        """The run that finished last, whatever its outcome."""
        with self._read() as db:
            return db.scalars(select(TrainingRun).where(TrainingRun.status.in_(FINISHED))
                              .order_by(desc(TrainingRun.finished_at)).limit(1)).first()

    def fail_if_running(self, run_id: int, error: str) -> bool:
        """Close a run as failed unless it already closed itself; True when this call closed it."""
        with self._write() as db:
            run = db.get(TrainingRun, run_id)
            if run is None or run.status != "running":
                return False
            _close(run, "failed", error=error)
            return True

    def fail_all_running(self, error: str) -> list[int]:
        """Close every run still marked running as failed; the ids closed."""
        with self._write() as db:
            runs = list(db.scalars(select(TrainingRun).where(TrainingRun.status == "running")))
            for run in runs:
                _close(run, "failed", error=error)
            return [run.id for run in runs]

    def last_completed(self) -> TrainingRun | None:
        """The run that last completed (succeeded or rejected): the last that built a data set."""
        with self._read() as db:
            return db.scalars(select(TrainingRun).where(TrainingRun.status.in_(COMPLETED))
                              .order_by(desc(TrainingRun.finished_at)).limit(1)).first()

    def last_watermark(self) -> int:
        """The newest message id a completed run trained on; 0 before the first."""
        with self._read() as db:
            return db.scalar(select(func.max(TrainingRun.watermark)).where(TrainingRun.status.in_(COMPLETED))) or 0

    def completed_since_from_base(self) -> int:
        """Completed runs after the newest completed one from the base model (runs recorded before runs
        had a kind were all from the base); a from-base run the gate rejected counts as one."""
        completed = TrainingRun.status.in_(COMPLETED)
        from_base = or_(TrainingRun.kind == "from_base", TrainingRun.kind.is_(None))
        with self._read() as db:
            last = db.scalar(select(func.max(TrainingRun.id)).where(completed, from_base)) or 0
            return db.scalar(select(func.count()).select_from(TrainingRun).where(completed, TrainingRun.id > last))


def run_json(run: TrainingRun) -> dict:
    """A run as the admin API and the CLI show it."""
    return {name: getattr(run, name) for name in RUN_FIELDS}


def _close(run: TrainingRun, status: str, **fields) -> None:
    """Set a run's outcome, end time, duration and any other fields."""
    run.status, run.finished_at = status, utcnow()
    run.duration_s = round((run.finished_at - run.started_at).total_seconds(), 1)
    for name, value in fields.items():
        setattr(run, name, value)
