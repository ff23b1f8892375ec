"""A conversation's messages, its training consent, and erasing it.

The unguessable session id is the capability: whoever holds it may read or erase.
"""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from storage.tables import Message
from web.services import services
from web.validation import checked_session_id, consent_request, page_request

bp = Blueprint("sessions", __name__, url_prefix="/api/sessions")


def message_json(message: Message) -> dict:
    """A stored message as the API shows it."""
    fields = {"id": message.id, "role": message.role, "content": message.content,
              "created_at": message.created_at, "risk_level": message.risk_level}
    if message.role == "assistant":
        fields.update(source=message.source, model=message.model, status=message.status)
    return fields


@bp.get("/<session_id>/messages")
def messages(session_id: str):
    """A page of the conversation, oldest message first: the newest ``limit``, or those before ``before``."""
    limit, before = page_request(request)
    stored, older = services().conversations.messages(checked_session_id(session_id), limit, before)
    return jsonify({"session_id": session_id, "messages": [message_json(m) for m in stored],
                    "next_before": stored[0].id if older else None})


@bp.patch("/<session_id>")
def set_consent(session_id: str):
    """Allow or withdraw the use of this conversation for training."""
    chat = services().conversations.set_consent(checked_session_id(session_id), consent_request(request))
    return jsonify({"session_id": chat.id, "role": chat.role, "training_consent": chat.training_consent})


@bp.delete("/<session_id>")
def erase(session_id: str):
    """Erase the conversation's messages for good."""
    services().conversations.erase(checked_session_id(session_id))
    return "", 204
