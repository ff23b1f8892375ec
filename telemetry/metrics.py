"""Every metric the service exports, defined once; the rooms record them where the events happen.

Labels carry only small fixed sets of values (a URL rule, a status, a level, an error code): never a
session id, a memory id, a user id or message text. Under gunicorn the values live in
PROMETHEUS_MULTIPROC_DIR (telemetry/exposition.py), so a scrape adds up every worker.
"""

from __future__ import annotations

import logging
from typing import Callable, Iterator

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

# Seconds: a health check takes a millisecond, a streamed reply tens of seconds.
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
SCREENING_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1)
TRAINING_BUCKETS = (60, 300, 600, 1800, 3600, 7200, 14400, 28800, 86400)

HTTP_REQUESTS = Counter("therapistai_http_requests_total", "HTTP answers by URL rule (never the path), method "
                        "and status", ["route", "method", "status"])
HTTP_DURATION = Histogram("therapistai_http_request_duration_seconds", "From the request to the answer's last "
                          "byte (a stream's included), by URL rule", ["route"], buckets=REQUEST_BUCKETS)
CHAT_TURNS = Counter("therapistai_chat_turns_total", "Chat turns by who answered (groq, local, safety), the "
                     "turn's risk level, the status the client saw (ok, blocked, error, truncated) and whether it "
                     "was streamed",
                     ["source", "risk_level", "status", "stream"])
GROQ_DURATION = Histogram("therapistai_groq_request_duration_seconds", "Groq calls (replies, crisis replies, the "
                          "safety judge) from the request to the whole reply or the failure", buckets=REQUEST_BUCKETS)
GROQ_FIRST_TOKEN = Histogram("therapistai_groq_time_to_first_token_seconds", "Streamed Groq replies: from the "
                             "request to the first text", buckets=REQUEST_BUCKETS)
GROQ_ERRORS = Counter("therapistai_groq_errors_total", "Groq calls that gave no reply, by the error code the "
                      "client is told", ["code"])
SCREENING_DURATION = Histogram("therapistai_screening_duration_seconds", "Crisis screening of a user message, or of "
                               "a piece of a model reply", ["kind"], buckets=SCREENING_BUCKETS)
SCREENING_VERDICTS = Counter("therapistai_screening_verdicts_total", "User messages by the risk level screened and "
                             "the layer that set it; layer judge: the safety judge's own verdicts",
                             ["level", "layer"])
LOCAL_TOKENS = Counter("therapistai_local_tokens_total", "Tokens the local model generated (replies and shadow "
                       "replies)")
LOCAL_QUEUE_DEPTH = Gauge("therapistai_local_queue_depth", "Local replies waiting for a place in the batch",
                          multiprocess_mode="livesum")
LOCAL_BATCH_SIZE = Histogram("therapistai_local_batch_size", "Replies decoded together, per decoding step",
                             buckets=(1, 2, 4, 8, 16, 32))
FALLBACKS = Counter("therapistai_fallbacks_total", "Replies given by another than the first choice: Groq for the "
                    "local model (local_*), the fixed crisis reply for Groq's (crisis_*)", ["reason"])
RATE_LIMITED = Counter("therapistai_rate_limited_total", "Requests refused with 429 rate_limited")
TRAINING_RUNS = Counter("therapistai_training_runs_total", "Training runs ended, by status (succeeded, rejected, "
                        "failed) and kind (incremental, from_base; none when it failed before choosing)",
                        ["status", "kind"])
TRAINING_DURATION = Histogram("therapistai_training_run_duration_seconds", "Training runs from start to end",
                              buckets=TRAINING_BUCKETS)


class State(Collector):
    """What the database says at scrape time: the active model version and the memory backlog.

    Read when scraped, not recorded by a worker: every worker and replica sees the same database.
    """

    def __init__(self, active_version: Callable[[], str | None], memory_backlog: Callable[[], int]):
        self.active_version, self.memory_backlog = active_version, memory_backlog

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            version, backlog = self.active_version(), self.memory_backlog()
        except Exception as e:  # the workers' own metrics are still worth a scrape while the database is away
            log.warning("Metrics scrape without the database's gauges: %s", type(e).__name__)
            return
        active = GaugeMetricFamily("therapistai_active_version_info", "The model version the local model answers "
                                   "with (1); absent when none is active", labels=["version"])
        if version is not None:
            active.add_metric([version], 1)
        yield active
        yield GaugeMetricFamily("therapistai_memory_backlog", "Remembered messages waiting for their embedding",
                                value=backlog)
