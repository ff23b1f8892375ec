"""When auto-training is due: enough new eligible replies, and no failed run within the cooldown."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine

from config import Settings
from storage.tables import utcnow
from storage.training_data import NO_ELIGIBLE_REPLIES, TrainingData
from storage.training_runs import TrainingRuns


class Policy:
    """AUTO_TRAIN_THRESHOLD and AUTO_TRAIN_COOLDOWN, read against the database."""

    def __init__(self, settings: Settings, engine: Engine):
        self.threshold = settings.auto_train_threshold
        self.cooldown = settings.auto_train_cooldown
        self.training_data, self.runs = TrainingData(engine), TrainingRuns(engine)

    def eligible_since_last_training(self) -> int:
        """Replies that may become training examples, newer than the last completed run's watermark."""
        return self.training_data.count_eligible_replies(self.runs.last_watermark())

    def cooldown_left(self) -> float:
        """Seconds until auto-training may trigger again after a failed run; 0 when it may now."""
        last = self.runs.latest_finished()
        if last is None or last.status != "failed" or last.finished_at is None:
            return 0.0
        ends = last.finished_at + timedelta(seconds=self.cooldown)
        return max(0.0, (ends - utcnow()).total_seconds())

    def due(self) -> int | None:
        """The number of new eligible replies when a run is due now, else None."""
        if self.cooldown_left() > 0:
            return None
        new = self.eligible_since_last_training()
        return new if new >= self.threshold else None

    def refusal(self, force: bool) -> str | None:
        """Why a run asked for now should not start: no eligible data at all, or (unless forced) too little new."""
        if self.training_data.count_eligible_replies() == 0:
            return NO_ELIGIBLE_REPLIES
        new = self.eligible_since_last_training()
        if force or new >= self.threshold:
            return None
        return (f"Only {new} new eligible replies since the last training; AUTO_TRAIN_THRESHOLD is "
                f"{self.threshold}. Use --force to train anyway.")
