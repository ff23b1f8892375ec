"""The folder where gunicorn's workers keep their metrics, so that one scrape adds up every worker.

prometheus_client decides when it is first imported whether a process keeps its metrics in memory or in
PROMETHEUS_MULTIPROC_DIR: gunicorn's master sets the folder here before it forks a worker, and imports
prometheus_client only once a worker has ended.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

VARIABLE = "PROMETHEUS_MULTIPROC_DIR"  # prometheus_client's own name, read by every process forked after this


def prepare(path: str | None) -> Path:
    """Empty ``path`` (created if missing), or make a temporary folder; the workers forked from now on use it."""
    if path:
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.db"):  # a previous run's counts would be added to this one's
            stale.unlink()
    else:
        folder = Path(tempfile.mkdtemp(prefix="therapistai-metrics-"))
    os.environ[VARIABLE] = str(folder)
    return folder


def worker_ended(pid: int, folder: Path) -> None:
    """Drop an ended worker's live gauges (the local queue); its counters stay in the sums."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, str(folder))


def remove(folder: Path) -> None:
    """Delete a temporary folder at shutdown."""
    shutil.rmtree(folder, ignore_errors=True)
