"""gunicorn's access log without capabilities: a session id in a path is as good as the conversation.

With LOG_FORMAT=json, gunicorn's own lines are JSON objects too, and each access line carries the request's
id, its URL rule, status and duration (seconds) as fields of their own.
"""

from __future__ import annotations

import re

from gunicorn.glogging import Logger

from telemetry.logs import use_format
from web.request_ids import ROUTE_KEY, UNMATCHED

SESSION_PATH = re.compile(r"(/api/sessions/)[^/?\s]+")
REDACTED = r"\1-"


class RedactingLogger(Logger):
    """Logs `/api/sessions/-/messages` where the request said `/api/sessions/<id>/messages`."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for key in ("r", "U"):  # the request line and the path
            if atoms.get(key):
                atoms[key] = SESSION_PATH.sub(REDACTED, atoms[key])
        return atoms


class JsonLogger(RedactingLogger):
    """LOG_FORMAT=json: one JSON object per line, the redacted access line with its fields beside it."""

    def setup(self, cfg):
        super().setup(cfg)
        for handler in (*self.error_log.handlers, *self.access_log.handlers):
            use_format(handler, "json")

    def access(self, resp, req, environ, request_time):
        if not self.access_log_enabled:
            return
        atoms = self.atoms_wrapper_class(self.atoms(resp, req, environ, request_time))
        self.access_log.info(self.cfg.access_log_format, atoms, extra={
            "request_id": atoms["{x-request-id}o"], "route": environ.get(ROUTE_KEY, UNMATCHED),
            "status": int(atoms["s"]), "duration": round(request_time.total_seconds(), 6)})
