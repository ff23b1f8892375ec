"""POST /api/chat: parse the message, run the turn (assistant/turn.py), frame the answer as JSON or SSE."""

from __future__ import annotations

import json
from contextlib import closing

from flask import Blueprint, Response, g, jsonify, request

from web.errors import ApiError
from web.services import services
from web.validation import chat_request

bp = Blueprint("chat", __name__)


@bp.post("/api/chat")
def chat():
    """Answer one chat message, as JSON or as a server-sent event stream."""
    svc = services()
    body = chat_request(request, svc.settings.max_message_chars)
    if (body.remember or body.memory_id) and not svc.settings.memory_enabled:
        raise ApiError(403, "memory_disabled", "Memory across sessions is turned off on this service; "
                       "leave out remember and memory_id.")
    screened = svc.turns.screen(body)
    # what a database error's answer needs to know
    g.risk_level, g.resources = screened.screening.risk_level, svc.turns.resources.text(screened.lang)
    answering = svc.turns.start(body, screened)
    g.session_id, g.message_id = answering.turn.session_id, answering.turn.message_id
    if body.stream:
        return _sse(answering.stream())
    return jsonify(answering.reply())


def _sse(events) -> Response:
    """Events as a text/event-stream response that proxies must not buffer."""
    return Response(_framed(events), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _framed(events):
    """Each event as one server-sent event, an empty one as a comment (clients ignore it); a client that leaves
    closes the turn's events too, at the first write that fails."""
    with closing(events):
        for event in events:
            yield f"data: {json.dumps(event, ensure_ascii=False)}\n\n" if event else ":\n\n"
