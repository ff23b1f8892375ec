"""The training lease: one holder across processes, on SQLite and on Postgres; expiry; stale runs."""

import os
import subprocess
import sys
import time
from pathlib import Path

from prometheus_client import REGISTRY

from jobs.supervisor import Supervisor
from storage.leases import Leases
from storage.migrate import migrated_engine
from storage.training_runs import TrainingRuns
from tests.conftest import stored

ROOT = Path(__file__).resolve().parent.parent
RACER = """
import sys, time
from storage.engine import make_engine
from storage.leases import Leases
url, holder, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
leases = Leases(make_engine(url))
leases.engine.connect().close()  # connected before the start line, so all race from the same moment
time.sleep(max(0, start - time.time()))
print(leases.acquire(holder, 60))
"""


def test_processes_racing_for_the_lease_one_wins(database_url):
    migrated_engine(database_url).dispose()
    start = time.time() + 3
    racers = [subprocess.Popen([sys.executable, "-c", RACER, database_url, f"racer-{i}", str(start)], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ)
              for i in range(4)]
    results = [racer.communicate(timeout=60) for racer in racers]

    assert all(racer.returncode == 0 for racer in racers), [err for _, err in results]
    assert sorted(out.strip() for out, _ in results) == ["False", "False", "False", "True"]
    assert Leases(migrated_engine(database_url)).holder().startswith("racer-")


def test_a_lease_nobody_renews_expires_and_can_be_taken(database_url):
    leases = Leases(migrated_engine(database_url))
    assert leases.acquire("first", ttl_s=0.5)
    assert not leases.acquire("second", ttl_s=60)
    assert leases.renew("first", ttl_s=0.5)

    time.sleep(0.7)

    assert leases.holder() is None
    assert leases.acquire("second", ttl_s=60)
    assert not leases.renew("first", ttl_s=60)  # the first holder learns it lost the lease
    leases.release("first")  # releasing a lease one no longer holds changes nothing
    assert leases.holder() == "second"
    leases.release("second")
    assert leases.acquire("third", ttl_s=60)


def failed_runs_counted() -> float:
    """This process's count of failed runs that had not chosen their kind, as /metrics would show it."""
    return REGISTRY.get_sample_value("therapistai_training_runs_total", {"status": "failed", "kind": "none"}) or 0.0


def test_taking_the_lease_closes_runs_a_stopped_holder_left_running(app, settings):
    engine = app.extensions["therapistai"].database.engine
    counted = failed_runs_counted()
    orphan = TrainingRuns(engine).start("auto", {}).id
    dead = Supervisor(settings, engine, lease_ttl=0.2)
    assert dead.leases.acquire(dead.holder, 0.2)  # a holder that then stopped renewing
    alive = Supervisor(settings, engine)
    assert alive.claim("manual") is None
    assert stored(app, "training_runs")[0]["status"] == "running"

    time.sleep(0.3)

    claimed = alive.claim("manual")
    orphaned, current = stored(app, "training_runs")
    assert orphaned["id"] == orphan and orphaned["status"] == "failed" and "lease expired" in orphaned["error"]
    assert failed_runs_counted() == counted + 1  # by the process that found it, for /metrics
    assert current["id"] == claimed and current["status"] == "running"
    assert dead.claim("auto") is None
    alive.leases.release(alive.holder)
    assert alive.leases.holder() is None
