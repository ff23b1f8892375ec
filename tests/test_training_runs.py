"""The run record's counts that decide a run's kind, on SQLite and on Postgres."""

from storage.migrate import migrated_engine
from storage.training_runs import TrainingRuns


def test_runs_since_the_last_from_base_run_count_completed_runs_a_rejected_retrain_included(database_url):
    runs = TrainingRuns(migrated_engine(database_url))

    def run(status, kind):
        runs.finish(runs.start("auto", {}).id, status, kind=kind)

    assert runs.completed_since_from_base() == 0
    run("succeeded", None)  # recorded before kinds: from the base
    run("succeeded", "incremental")
    run("failed", "incremental")  # a failed run is not counted
    run("rejected", "incremental")
    assert runs.completed_since_from_base() == 2
    run("rejected", "from_base")
    assert runs.completed_since_from_base() == 0
    run("succeeded", "incremental")
    runs.start("auto", {})  # still running
    assert runs.completed_since_from_base() == 1
