"""One supervised training run at a time across every process and replica.

Whoever takes the training lease opens the run record, with the settings the run
is made with (``config.RunConfig``), and starts ``python -m trainer train --run-id N``
as a child at low CPU priority. It renews the lease while the child runs, records
how the child ended when the child could not (killed, crashed) and releases the lease.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path

from sqlalchemy import Engine

from config import RunConfig, Settings
from jobs.policy import Policy
from storage.leases import Leases
from storage.training_runs import FINISHED, TrainingRuns
from telemetry import multiprocess
from telemetry.metrics import TRAINING_DURATION, TRAINING_RUNS

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
LEASE_TTL = 60.0  # a holder that has not renewed for this long is presumed dead
HEARTBEAT = 10.0
BUSY = "A training run is already in progress."
# A run's child closes its record, then exits; its supervisor releases the lease after that (torch's
# teardown, the log relay): up to a few seconds in which the lease is held but no run is running.
SETTLE_S, SETTLE_POLL_S = 10.0, 0.1
CHILD_NICE = 10
ERROR_TAIL_LINES = 30
KINDS = ("incremental", "from_base")  # what a run decided to be; "none" when it failed before deciding
for _status in FINISHED:  # every series from zero, so that the first run of a kind is an increase
    for _kind in KINDS:
        TRAINING_RUNS.labels(_status, _kind)


class TrainingBusy(RuntimeError):
    """Another process holds the training lease."""


class TrainingRefused(RuntimeError):
    """A run asked for by hand would have nothing, or (unless forced) too little, to learn from."""


class Supervisor:
    """Claims runs under the training lease and watches their child processes."""

    def __init__(self, settings: Settings, engine: Engine, heartbeat: float = HEARTBEAT, lease_ttl: float = LEASE_TTL):
        self.settings = settings
        self.runs, self.leases = TrainingRuns(engine), Leases(engine)
        self.policy = Policy(settings, engine)
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.heartbeat, self.lease_ttl = heartbeat, lease_ttl
        self._child: subprocess.Popen | None = None

    def claim(self, trigger: str, from_base: bool = False) -> int | None:
        """Take the lease and open a run record with this service's training settings; None when busy.

        ``from_base`` asks for a retrain from the base model on the whole history instead of
        continuing the active version."""
        if not self._take():
            return None
        try:
            return self.runs.start(trigger, RunConfig.from_settings(self.settings, from_base).to_dict()).id
        except Exception:
            self.leases.release(self.holder)
            raise

    def claim_asked(self, force: bool, from_base: bool, trigger: str = "manual") -> int:
        """A run asked for by hand (`python -m trainer train`): the policy's check unless forced, then the claim;
        raises TrainingRefused or TrainingBusy with the sentence to show."""
        refusal = self.policy.refusal(force)
        if refusal:
            raise TrainingRefused(refusal)
        run_id = self.claim(trigger, from_base)
        if run_id is None:
            raise TrainingBusy(BUSY)
        return run_id

    def start_now(self, trigger: str = "admin", from_base: bool = False) -> int:
        """Start a run at once, whatever the count, supervised by a new thread; raises TrainingBusy.

        While the lease is held but no run is marked running (one has just ended and its supervisor is
        letting go), wait for it, up to SETTLE_S: an admin who clicks "Train now" right after a run is
        not refused."""
        deadline = time.monotonic() + SETTLE_S
        while (run_id := self.claim(trigger, from_base)) is None:
            if self.runs.running() is not None or time.monotonic() > deadline:
                raise TrainingBusy(BUSY)
            time.sleep(SETTLE_POLL_S)
        log.info("Training started by %s: run %s", trigger, run_id)
        threading.Thread(target=self.supervise, args=(run_id,), name=f"training-run-{run_id}", daemon=True).start()
        return run_id

    def supervise(self, run_id: int) -> int | None:
        """Run a claimed run's child to its end, renewing the lease; record it; release the lease.

        Returns the child's exit code, or None when it could not be started.
        """
        tail: deque[str] = deque(maxlen=ERROR_TAIL_LINES)
        try:
            child = self._child = self._spawn(run_id)
            relay = threading.Thread(target=_relay, args=(child.stderr, tail), daemon=True)
            relay.start()
            while not self._wait(child):
                if not self._renew():
                    log.error("Training lease lost: stopping run %s", run_id)
                    child.kill()
            relay.join(timeout=10)
            self._record(run_id, child.returncode, tail)
            return child.returncode
        except Exception as e:  # could not even start the child
            log.exception("Training run %s could not be supervised", run_id)
            self.runs.fail_if_running(run_id, f"The training process could not be run: {e}")
            self._count(run_id)
            return None
        finally:
            self._child = None
            self.leases.release(self.holder)

    def stop(self) -> None:
        """Stop a run in progress; it is recorded as failed."""
        child = self._child
        if child is not None and child.poll() is None:
            log.warning("Stopping training run with this process")
            child.terminate()

    def _take(self) -> bool:
        """Take the lease; runs still marked running now belong to holders that stopped."""
        if not self.leases.acquire(self.holder, self.lease_ttl):
            return False
        for stale in self.runs.fail_all_running("The process supervising this run stopped "
                                                "(its training lease expired)."):
            log.warning("Training run %s was left behind by a stopped process: marked failed", stale)
            self._count(stale)  # its supervisor could not count it
        return True

    def _spawn(self, run_id: int) -> subprocess.Popen:
        """`python -m trainer train --run-id N`: the run record holds its settings, the environment its database."""
        env = {**os.environ, "DATABASE_URL": self.settings.database_url, "PYTHONUNBUFFERED": "1"}
        env.pop(multiprocess.VARIABLE, None)  # the child's metrics are never scraped: its run is counted here
        command = [sys.executable, "-m", "trainer", "train", "--run-id", str(run_id), "--nice", str(CHILD_NICE),
                   "--parent-pid", str(os.getpid())]
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
        run = self._count(run_id)
        if run.status == "failed":
            log.error("Training run %s failed; auto-training waits %.0fs before the next try",
                      run_id, self.settings.auto_train_cooldown)
        else:
            log.info("Training run %s finished: %s, version %s", run_id, run.status, run.version)

    def _count(self, run_id: int):
        """Count an ended run where it was supervised (its child may have been killed); the run's record."""
        run = self.runs.get(run_id)
        TRAINING_RUNS.labels(run.status, run.kind or "none").inc()
        if run.duration_s is not None:
            TRAINING_DURATION.observe(run.duration_s)
        return run


def _relay(stream, tail: deque[str]) -> None:
    """Pass the child's log lines through to ours, keeping the last few for the run record."""
    for line in stream:
        sys.stderr.write(line)
        tail.append(line)
    stream.close()
