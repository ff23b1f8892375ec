"""GET /metrics (Prometheus' text format) and the HTTP metrics of every request.

With METRICS_TOKEN unset, metrics are off: /metrics answers 403 and requests are not timed.
"""

from __future__ import annotations

import time

from flask import Blueprint, Flask, Response, g, request

from config import Settings
from telemetry import exposition
from telemetry.metrics import HTTP_DURATION, HTTP_REQUESTS, State
from web.errors import ApiError
from web.request_ids import route
from web.services import services

bp = Blueprint("metrics", __name__)
METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}  # any other is counted as "other"


@bp.get("/metrics")
def metrics():
    """Every worker's metrics, and the database's gauges read now."""
    svc = services()
    refused = exposition.refusal(request.headers.get("Authorization"), svc.settings.metrics_token)
    if refused is not None:
        status, code, message = refused
        raise ApiError(status, code, message, {"WWW-Authenticate": "Bearer"} if status == 401 else None)
    state = State(svc.registry.active_name, svc.memory.store.waiting)
    return Response(exposition.scrape(state), content_type=exposition.CONTENT_TYPE)


def init_metrics(app: Flask, settings: Settings) -> None:
    """Time and count every request, when metrics are on."""
    if settings.metrics_token:
        app.before_request(_started)
        app.after_request(_timed)


def _started() -> None:
    """When the request began."""
    g.metrics_started = time.perf_counter()


def _timed(response: Response) -> Response:
    """Count the request and time it to its last byte, once the server has sent it."""
    started, rule = g.get("metrics_started", time.perf_counter()), route()
    method = request.method if request.method in METHODS else "other"
    status = str(response.status_code)

    def record():
        HTTP_REQUESTS.labels(rule, method, status).inc()
        HTTP_DURATION.labels(rule).observe(time.perf_counter() - started)

    response.call_on_close(record)
    return response
