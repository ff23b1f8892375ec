"""gunicorn settings, from the same validated flags as the app (`gunicorn -c gunicorn.conf.py api:app`)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # gunicorn reads this file before --chdir

from config import ConfigError, Settings  # noqa: E402

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
logger_class = "web.access_log.RedactingLogger"  # session ids are capabilities: never in the access log
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'
errorlog = "-"
loglevel = _settings.log_level.lower()


def on_starting(server):
    """Say at start-up what the rate limits count: with memory:// each worker counts on its own."""
    if workers > 1 and _settings.ratelimit_storage_uri.startswith("memory://"):
        server.log.warning("Rate limits count per worker with RATELIMIT_STORAGE_URI=memory://: %d workers let up to "
                           "%d times CHAT_RATE_LIMIT through. Set RATELIMIT_STORAGE_URI=redis://... to count once.",
                           workers, workers)
