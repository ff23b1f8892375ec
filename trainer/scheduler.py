"""When to train, and one supervised run at a time across every process.

After each stored turn the chat service calls ``notify()``: it only wakes this
process's trigger thread. That thread checks the database at most once a second
(and every POLL_SECONDS anyway): auto-training on, no failed run within
AUTO_TRAIN_COOLDOWN, enough eligible replies since the last completed run's
watermark. Then it tries to take the training lease; whoever gets it starts
``python -m trainer train --run-id N`` as a child at low CPU priority, renews the
lease while the child runs, records how it ended and releases the lease.
`python -m trainer worker` runs the same loop as its own process.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import subprocess
import sys
import threading
from collections import deque
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Iterator

from sqlalchemy import Engine

from config import Settings
from storage.leases import Leases
from storage.repo import Repo
from storage.tables import utcnow
from storage.training_runs import TrainingRuns

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
POLL_SECONDS = 60.0  # checks without a notify: a cooldown may have ended, another replica may have chatted
MIN_CHECK_INTERVAL = 1.0  # notifies in between are folded into the next check
LEASE_TTL = 60.0  # a holder that has not renewed for this long is presumed dead
HEARTBEAT = 10.0
CHILD_NICE = 10
ERROR_TAIL_LINES = 30


class TrainingBusy(RuntimeError):
    """Another process holds the training lease."""


class Scheduler:
    """This process's trigger and supervisor."""

    def __init__(self, settings: Settings, engine: Engine, heartbeat: float = HEARTBEAT, lease_ttl: float = LEASE_TTL):
        self.settings = settings
        self.repo, self.runs, self.leases = Repo(engine), TrainingRuns(engine), Leases(engine)
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.heartbeat, self.lease_ttl = heartbeat, lease_ttl
        self._wake, self._stop = threading.Event(), threading.Event()
        self._trigger: threading.Thread | None = None
        self._child: subprocess.Popen | None = None

    def start(self) -> None:
        """Run the trigger loop in a daemon thread of this process."""
        self._trigger = threading.Thread(target=self.run_forever, name="training-trigger", daemon=True)
        self._trigger.start()
        atexit.register(self.stop)

    def notify(self) -> None:
        """A turn was stored: check soon. Costs an event flag; does nothing when auto-training is off."""
        if self._trigger is not None:
            self._wake.set()

    def run_forever(self) -> None:
        """Check, supervise a run when one is due, wait for the next notify or poll; until stopped."""
        while not self._stop.is_set():
            ran = None
            try:
                ran = self.check()
            except Exception:  # the database may be away for a moment; the loop must survive it
                log.exception("Checking whether to train failed")
            self._stop.wait(MIN_CHECK_INTERVAL)
            if ran is None:  # after a run, look again at once: messages arrived while it trained
                self._wake.wait(POLL_SECONDS)
            self._wake.clear()

    def stop(self) -> None:
        """End the loop; a run in progress is stopped and recorded as failed."""
        self._stop.set()
        self._wake.set()
        child = self._child
        if child is not None and child.poll() is None:
            log.warning("Stopping training run with this process")
            child.terminate()

    def eligible_since_last_training(self) -> int:
        """Replies that may become training examples, newer than the last completed run's watermark."""
        return eligible_since_last_training(self.repo, self.runs)

    def cooldown_left(self) -> float:
        """Seconds until auto-training may trigger again after a failed run; 0 when it may now."""
        last = self.runs.latest_finished()
        if last is None or last.status != "failed" or last.finished_at is None:
            return 0.0
        ends = last.finished_at + timedelta(seconds=self.settings.auto_train_cooldown)
        return max(0.0, (ends - utcnow()).total_seconds())

    def check(self) -> int | None:
        """Train now if it is due and the lease is free; the finished run's id, else None."""
        if self.cooldown_left() > 0:
            return None
        new = self.eligible_since_last_training()
        if new < self.settings.auto_train_threshold:
            return None
        run_id = self._claim("auto")
        if run_id is None:
            return None
        log.info("Auto-triggering training (%d new messages)", new)
        self.supervise(run_id, force=False)
        return run_id

    def start_now(self, trigger: str = "admin") -> int:
        """Start a run at once, whatever the count, supervised by a new thread; raises TrainingBusy."""
        run_id = self._claim(trigger)
        if run_id is None:
            raise TrainingBusy("A training run is already in progress.")
        log.info("Training started by %s: run %s", trigger, run_id)
        threading.Thread(target=self.supervise, args=(run_id, True), name=f"training-run-{run_id}", daemon=True).start()
        return run_id

    def supervise(self, run_id: int, force: bool) -> None:
        """Run the child to its end, renewing the lease; record the outcome; release the lease."""
        tail: deque[str] = deque(maxlen=ERROR_TAIL_LINES)
        try:
            child = self._child = self._spawn(run_id, force)
            relay = threading.Thread(target=_relay, args=(child.stderr, tail), daemon=True)
            relay.start()
            while not self._wait(child):
                if not self._renew():
                    log.error("Training lease lost: stopping run %s", run_id)
                    child.kill()
            relay.join(timeout=10)
            self._record(run_id, child.returncode, tail)
        except Exception as e:  # could not even start the child
            log.exception("Training run %s could not be supervised", run_id)
            self.runs.fail_if_running(run_id, f"The training process could not be run: {e}")
        finally:
            self._child = None
            self.leases.release(self.holder)

    @contextmanager
    def lease_held(self) -> Iterator[None]:
        """Hold the training lease, renewed by a thread, for a run in this process; raises TrainingBusy."""
        if not self._take():
            raise TrainingBusy("A training run is already in progress.")
        done = threading.Event()
        beat = threading.Thread(target=self._beat, args=(done,), name="training-lease", daemon=True)
        beat.start()
        try:
            yield
        finally:
            done.set()
            beat.join()
            self.leases.release(self.holder)

    def _beat(self, done: threading.Event) -> None:
        """Renew the lease every heartbeat until ``done``."""
        while not done.wait(self.heartbeat):
            self._renew()

    def _take(self) -> bool:
        """Take the lease; runs still marked running now belong to holders that stopped."""
        if not self.leases.acquire(self.holder, self.lease_ttl):
            return False
        for stale in self.runs.fail_all_running("The process supervising this run stopped "
                                                "(its training lease expired)."):
            log.warning("Training run %s was left behind by a stopped process: marked failed", stale)
        return True

    def _claim(self, trigger: str) -> int | None:
        """Take the lease and open a run record under it; None when someone else holds it."""
        if not self._take():
            return None
        try:
            return self.runs.start(trigger).id
        except Exception:
            self.leases.release(self.holder)
            raise

    def _spawn(self, run_id: int, force: bool) -> subprocess.Popen:
        """`python -m trainer train --run-id N` on this service's database and model folder."""
        s = self.settings
        env = {**os.environ, "DATABASE_URL": s.database_url, "MODEL_DIR": str(s.model_dir),
               "BASE_MODEL": s.base_model, "AUTO_TRAIN_THRESHOLD": str(s.auto_train_threshold),
               "PYTHONUNBUFFERED": "1"}
        command = [sys.executable, "-m", "trainer", "train", "--run-id", str(run_id), "--nice", str(CHILD_NICE),
                   "--parent-pid", str(os.getpid()), *(["--force"] if force else [])]
        return subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, errors="replace")

    def _wait(self, child: subprocess.Popen) -> bool:
        """Wait one heartbeat for the child; True once it has exited."""
        try:
            child.wait(timeout=self.heartbeat)
            return True
        except subprocess.TimeoutExpired:
            return False

    def _renew(self) -> bool:
        """Renew the lease; a database hiccup is not a lost lease, the next heartbeat tries again."""
        try:
            return self.leases.renew(self.holder, self.lease_ttl)
        except Exception:
            log.exception("Could not renew the training lease")
            return True

    def _record(self, run_id: int, returncode: int, tail: deque[str]) -> None:
        """Close the run if the child could not (killed, crashed); log how it ended."""
        if returncode < 0:
            reason = f"The training process was killed by signal {-returncode}"
            reason += " (out of memory?)" if returncode == -9 else ""
        else:
            reason = f"The training process exited with code {returncode}"
        if self.runs.fail_if_running(run_id, f"{reason}.\n" + "".join(tail)[-4000:]):
            log.error("Training run %s failed: %s", run_id, reason)
        run = self.runs.get(run_id)
        if run.status == "failed":
            log.error("Training run %s failed; auto-training waits %.0fs before the next try",
                      run_id, self.settings.auto_train_cooldown)
        else:
            log.info("Training run %s finished: %s, version %s", run_id, run.status, run.version)


def eligible_since_last_training(repo: Repo, runs: TrainingRuns) -> int:
    """Replies that may become training examples, newer than the last completed run's watermark."""
    return repo.count_eligible_replies(runs.last_watermark())


def _relay(stream, tail: deque[str]) -> None:
    """Pass the child's log lines through to ours, keeping the last few for the run record."""
    for line in stream:
        sys.stderr.write(line)
        tail.append(line)
    stream.close()
