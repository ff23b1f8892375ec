"""Log lines on stderr, as text or (LOG_FORMAT=json) one JSON object per line, each with its request's id.

A request's id is held in a context variable from the moment the web layer reads it until the answer's
last byte is sent, so the lines a streamed reply logs after its view returned carry it too. Lines never
hold message text or session ids (the access log redacts them: web/access_log.py).
"""

from __future__ import annotations

import logging
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"
JSON_FIELDS = ["asctime", "levelname", "name", "message", "request_id"]
JSON_NAMES = {"asctime": "time", "levelname": "level", "name": "logger"}

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


class RequestId(logging.Filter):
    """Puts the current request's id on each record, ``outside`` when there is none, unless it has one."""

    def __init__(self, outside: str | None):
        super().__init__()
        self.outside = outside

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get() or self.outside
        return True


def use_format(handler: logging.Handler, log_format: str) -> None:
    """Give ``handler`` LOG_FORMAT's lines: text ("-" outside a request), or JSON objects with time, level,
    logger, message, request_id (null outside a request) and any fields a record was given as extra."""
    json = log_format == "json"
    handler.setFormatter(JsonFormatter(JSON_FIELDS, rename_fields=JSON_NAMES, json_ensure_ascii=False) if json
                         else logging.Formatter(TEXT_FORMAT))
    for old in [f for f in handler.filters if isinstance(f, RequestId)]:
        handler.removeFilter(old)
    handler.addFilter(RequestId(None if json else "-"))


_stderr = logging.StreamHandler()


def configure_logging(level: str, log_format: str = "text") -> None:
    """One line per event on stderr, for the web workers and the trainer alike; a process whose root logger
    already has handlers (pytest's) keeps them."""
    use_format(_stderr, log_format)
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(_stderr)
    root.setLevel(level)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per Groq call adds nothing
