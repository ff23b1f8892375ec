"""JSON errors: every failure answers `{"error": {"code", "message"}}`, never a traceback."""

from __future__ import annotations

import logging
import re

from flask import Flask, g, jsonify
from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException, MethodNotAllowed, RequestEntityTooLarge

from assistant.completion import (
    ProviderBusy, ProviderError, ProviderFailed, ProviderPromptTooLong, ProviderRateLimited, ProviderTimeout,
    ProviderUnavailable,
)
from assistant.safety.patterns import NONE
from assistant.turn import TurnFailed, database_unavailable
from storage.memories import MemoryForgotten, MemoryMismatch, MemoryNotFound
from storage.conversations import RoleMismatch, SessionErased, SessionNotFound

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An error the client can act on; extra fields go into the error body."""

    def __init__(self, status: int, code: str, message: str, headers: dict | None = None, **extra):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}
        self.extra = extra


def error_response(status: int, code: str, message: str, headers: dict | None = None, **extra):
    """The JSON body and status every error shares."""
    response = jsonify({"error": {"code": code, "message": message, **extra}})
    response.status_code = status
    response.headers.update(headers or {})
    return response


def _from_http(e: HTTPException):
    """Werkzeug's own errors (404, 405, 413 ...) in our JSON shape."""
    if isinstance(e, RequestEntityTooLarge):
        return error_response(413, "body_too_large", "The request body is larger than 64 KB.")
    code = re.sub(r"\W+", "_", (e.name or "error").lower()).strip("_")
    messages = {
        404: "There is nothing at this address. Check the URL.",
        405: "This address does not accept that HTTP method.",
    }
    allow = {"Allow": ", ".join(e.valid_methods)} if isinstance(e, MethodNotAllowed) and e.valid_methods else None
    return error_response(e.code or 500, code, messages.get(e.code, e.description or e.name), allow)


DATABASE_RETRY_AFTER_S = 5
# What a model that gave no reply answers, for the chat and for an admin trying a version.
STATUS_BY_ERROR = {ProviderUnavailable: 503, ProviderRateLimited: 503, ProviderBusy: 503, ProviderTimeout: 504, ProviderFailed: 502,
                   ProviderPromptTooLong: 400}


def _no_reply(error: ProviderError, **ids):
    """A model's failure, with Retry-After when it asked for one and the turn's ids when it has them."""
    headers = {"Retry-After": str(error.retry_after)} if error.retry_after else None
    return error_response(STATUS_BY_ERROR.get(type(error), 502), error.code, error.message, headers, **ids)


def _database_unavailable(error: Exception):
    """503 with Retry-After, from what the request had learnt before the database failed."""
    ids = {name: g.get(name) for name in ("session_id", "message_id") if g.get(name) is not None}
    body = database_unavailable(error, g.get("risk_level", NONE), g.get("resources", ""), **ids)
    return error_response(503, body.pop("code"), body.pop("message"), {"Retry-After": str(DATABASE_RETRY_AFTER_S)},
                          **body)


def _unexpected(e: Exception):
    """Log the traceback for us; tell the client only that it failed."""
    log.exception("Unhandled error: %s", type(e).__name__)
    return error_response(500, "internal_error", "Something went wrong on our side. Please try again.")


# What a conversation or memory that cannot be used answers: status, code, message.
LOOKUP_ERRORS = {
    SessionNotFound: (404, "session_not_found", "No conversation has this session_id. "
                      "Leave session_id out to start a new one."),
    SessionErased: (410, "session_deleted", "This conversation was deleted. Leave session_id out to start a new one."),
    MemoryNotFound: (404, "memory_not_found", "No memory has this memory_id. Send \"remember\": true without a "
                     "memory_id to be given one."),
    MemoryForgotten: (410, "memory_forgotten", "This memory was forgotten at its owner's request. "
                      "Send \"remember\": true without a memory_id to start a new one."),
    MemoryMismatch: (409, "memory_mismatch", "This conversation is already remembered under another memory_id; "
                     "start a new conversation to use this one."),
}


def register_error_handlers(app: Flask) -> None:
    """Install the JSON error handlers."""
    app.register_error_handler(ApiError, lambda e: error_response(e.status, e.code, e.message, e.headers, **e.extra))
    for error, (status, code, message) in LOOKUP_ERRORS.items():
        app.register_error_handler(error, lambda e, s=status, c=code, m=message: error_response(s, c, m))
    app.register_error_handler(
        RoleMismatch,
        lambda e: error_response(409, "role_mismatch", f"This conversation was started as {e.args[0]}; "
                                 "start a new conversation to use another role."),
    )
    app.register_error_handler(ProviderError, _no_reply)
    app.register_error_handler(TurnFailed, lambda e: _no_reply(e.error, session_id=e.session_id,
                                                               message_id=e.message_id))
    for error in (OperationalError, InterfaceError):  # connection lost, server gone, file unwritable
        app.register_error_handler(error, _database_unavailable)
    app.register_error_handler(HTTPException, _from_http)
    app.register_error_handler(Exception, _unexpected)
