"""X-Request-ID: every answer carries one, the client's when it sent a sane one, and so do the log lines of
the request, until its last byte is sent (a stream's included)."""

from __future__ import annotations

import re
import uuid

from flask import Flask, Response, g, request

from telemetry import logs

HEADER = "X-Request-ID"
# What a client's id may be: short, and nothing a log reader could mistake for another field or line.
SANE = re.compile(r"[A-Za-z0-9._-]{1,128}")
# Where the access line (web/access_log.py) finds the URL rule: gunicorn logs it after the view returned.
ROUTE_KEY = "therapistai.route"
UNMATCHED = "unmatched"  # the route of a request no URL rule matched (a 404)


def init_request_ids(app: Flask) -> None:
    """Install the hooks; before any other, so that a request refused early (429) has an id too."""
    app.before_request_funcs.setdefault(None, []).insert(0, _take)
    app.after_request(_give)


def route() -> str:
    """The URL rule that matched this request (never its path, which may hold a session id)."""
    return request.url_rule.rule if request.url_rule is not None else UNMATCHED


def _take() -> None:
    """The client's id if it is sane, else a new one; held for this request's log lines."""
    given = request.headers.get(HEADER, "")
    g.request_id = given if SANE.fullmatch(given) else uuid.uuid4().hex
    logs.request_id.set(g.request_id)


def _give(response: Response) -> Response:
    """The id on the answer; the route for the access line; the id forgotten once the last byte is sent."""
    response.headers[HEADER] = g.get("request_id") or uuid.uuid4().hex
    request.environ[ROUTE_KEY] = route()
    response.call_on_close(lambda: logs.request_id.set(None))
    return response
