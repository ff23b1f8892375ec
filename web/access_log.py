"""gunicorn's access log without capabilities: a session id in a path is as good as the conversation."""

from __future__ import annotations

import re

from gunicorn.glogging import Logger

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
