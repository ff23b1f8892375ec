"""A scrape of this process's metrics (of every gunicorn worker, in multiprocess mode), and who may read it.

The rule is the same on the web service's GET /metrics and on the training worker's METRICS_PORT: with
METRICS_TOKEN set, `Authorization: Bearer <METRICS_TOKEN>` is required (401 otherwise); without it,
metrics are off and the answer is 403 metrics_disabled.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
from http import HTTPStatus
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, make_wsgi_app, values
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, ThreadingWSGIServer
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
DISABLED = (403, "metrics_disabled", "Metrics are off: set METRICS_TOKEN on the server.")
UNAUTHORIZED = (401, "unauthorized", "Send the metrics token as 'Authorization: Bearer <token>'.")


def refusal(authorization: str | None, token: str | None) -> tuple[int, str, str] | None:
    """Status, code and message when a scrape may not read the metrics; None when it may."""
    if not token:
        return DISABLED
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        return UNAUTHORIZED
    return None


def registry(*collectors: Collector) -> CollectorRegistry:
    """This process's metrics, or every worker's in multiprocess mode, and ``collectors`` read at scrape time."""
    scraped = CollectorRegistry(auto_describe=False)
    if values.ValueClass._multiprocess:
        MultiProcessCollector(scraped)
    else:
        scraped.register(REGISTRY)
    for collector in collectors:
        scraped.register(collector)
    return scraped


def scrape(*collectors: Collector) -> bytes:
    """The metrics in Prometheus' text format."""
    return generate_latest(registry(*collectors))


def serve(port: int, token: str | None, *collectors: Collector) -> ThreadingWSGIServer:
    """GET /metrics on ``port`` of every interface, from a daemon thread: prometheus_client's own WSGI app
    behind the token rule (its start_http_server has no authentication)."""
    metrics = make_wsgi_app(registry(*collectors))

    def guarded(environ, start_response):
        refused = refusal(environ.get("HTTP_AUTHORIZATION"), token)
        if refused is None:
            return metrics(environ, start_response)
        status, code, message = refused
        challenge = [] if status == 403 else [("WWW-Authenticate", "Bearer")]
        start_response(f"{status} {HTTPStatus(status).phrase}", [("Content-Type", "application/json"), *challenge])
        return [json.dumps({"error": {"code": code, "message": message}}).encode()]

    server = make_server("0.0.0.0", port, guarded, ThreadingWSGIServer, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, name="metrics-server", daemon=True).start()
    log.info("Metrics served on port %d (%s)", port, "token required" if token else "off: no METRICS_TOKEN")
    return server


class _Quiet(WSGIRequestHandler):
    """No access line per scrape."""

    def log_message(self, format, *args):
        pass
