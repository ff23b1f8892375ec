"""This process's auto-training loop: woken after each stored turn, it asks the policy and supervises due runs.

After each stored turn the chat service calls ``notify()``: it only wakes the trigger
thread. That thread checks the database at most once a second (and every
POLL_SECONDS anyway); when the policy says a run is due and the lease is free, it
supervises the run itself. `python -m trainer worker` runs the same loop as its own process.
"""

from __future__ import annotations

import atexit
import logging

from sqlalchemy import Engine

from config import Settings
from jobs.policy import Policy
from jobs.supervisor import Supervisor
from storage.poller import Poller

log = logging.getLogger(__name__)

POLL_SECONDS = 60.0  # checks without a notify: a cooldown may have ended, another replica may have chatted
MIN_CHECK_INTERVAL = 1.0  # notifies in between are folded into the next check


class Trigger:
    """The policy and the supervisor of this process, and the thread that joins them."""

    def __init__(self, policy: Policy, supervisor: Supervisor):
        self.policy, self.supervisor = policy, supervisor
        # after a run, look again at once: messages arrived while it trained
        self._loop = Poller(lambda: self.check() is not None, "training-trigger", POLL_SECONDS, log,
                            "Checking whether to train failed", min_interval=MIN_CHECK_INTERVAL)

    @classmethod
    def from_settings(cls, settings: Settings, engine: Engine) -> "Trigger":
        """The trigger of a web worker or of `python -m trainer worker`."""
        return cls(Policy(settings, engine), Supervisor(settings, engine))

    def start(self) -> None:
        """Run the loop in a daemon thread of this process."""
        self._loop.start()
        atexit.register(self.stop)

    def notify(self) -> None:
        """A turn was stored: check soon. Costs an event flag; does nothing when auto-training is off."""
        self._loop.notify()

    def run_forever(self) -> None:
        """Check, supervise a run when one is due, wait for the next notify or poll; until stopped."""
        self._loop.run_forever()

    def check(self) -> int | None:
        """Train now if it is due and the lease is free; the finished run's id, else None."""
        new = self.policy.due()
        if new is None:
            return None
        run_id = self.supervisor.claim("auto")
        if run_id is None:
            return None
        log.info("Auto-triggering training (%d new messages)", new)
        self.supervisor.supervise(run_id)
        return run_id

    def stop(self) -> None:
        """End the loop; a run in progress is stopped and recorded as failed."""
        self._loop.stop()
        self.supervisor.stop()
