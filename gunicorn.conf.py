"""gunicorn settings, from the same validated flags as the app (`gunicorn -c gunicorn.conf.py api:app`)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # gunicorn reads this file before --chdir

from config import ConfigError, Settings  # noqa: E402
from telemetry import multiprocess  # noqa: E402  (no prometheus_client in the master before the folder is set)

try:
    _settings = Settings.from_env()
except ConfigError as e:  # a bad flag stops gunicorn here, before any worker starts
    raise SystemExit(f"Configuration error: {e}") from None

bind = f"0.0.0.0:{_settings.port}"
workers = _settings.web_concurrency
# gthread: a thread per request, so a slow client holds one thread, not the worker; WEB_THREADS (64)
# outlasts 100 clients trickling their headers (bench/slow_clients.py). gevent would too, but local
# generation and the embedding model would stall every other request of the worker.
worker_class = "gthread"
threads = _settings.web_threads
# Streamed replies and slow upstream calls need longer than gunicorn's 30 s default.
timeout = 120
graceful_timeout = 30
keepalive = 5
# Never preload: torch's thread pools and a pooled database engine must not cross a fork.
preload_app = False
accesslog = "-"
# session ids are capabilities: never in the access log
logger_class = "web.access_log.JsonLogger" if _settings.log_format == "json" else "web.access_log.RedactingLogger"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms %({x-request-id}o)s'
errorlog = "-"
loglevel = _settings.log_level.lower()


# With metrics on, every worker keeps its counts in one folder, so that a scrape of any worker adds them all up.
# A folder named without METRICS_TOKEN is prepared too: prometheus_client writes there whenever it is set.
_metrics_dir = (multiprocess.prepare(_settings.prometheus_multiproc_dir)
                if _settings.metrics_token or _settings.prometheus_multiproc_dir else None)


def on_starting(server):
    """Say at start-up what the rate limits count: with memory:// each worker counts on its own."""
    if workers > 1 and _settings.ratelimit_storage_uri.startswith("memory://"):
        server.log.warning("Rate limits count per worker with RATELIMIT_STORAGE_URI=memory://: %d workers let up to "
                           "%d times CHAT_RATE_LIMIT through. Set RATELIMIT_STORAGE_URI=redis://... to count once.",
                           workers, workers)


def child_exit(server, worker):
    """A worker ended: its live gauges leave the sums (its counters stay)."""
    if _metrics_dir is not None:
        multiprocess.worker_ended(worker.pid, _metrics_dir)


def on_exit(server):
    """Remove the metrics folder when it was a temporary one."""
    if _metrics_dir is not None and not _settings.prometheus_multiproc_dir:
        multiprocess.remove(_metrics_dir)
