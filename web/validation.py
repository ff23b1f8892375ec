"""Request bodies checked field by field, with errors a client can act on."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Request

from assistant.prompts import ROLES
from web.errors import ApiError


@dataclass(frozen=True)
class ChatRequest:
    """A validated body of POST /api/chat."""

    message: str
    session_id: str | None
    role: str | None
    user_id: str | None
    training_consent: bool | None
    stream: bool


def json_object(request: Request, allowed: dict[str, type]) -> dict:
    """The body as a dict of known fields with the right types; null counts as absent."""
    body = request.get_json(silent=True, force=True)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_json", "The request body must be a JSON object.")
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise ApiError(
            400, "unknown_field",
            f"Unknown field(s): {', '.join(unknown)}. Allowed: {', '.join(allowed)}.",
        )
    for name, kind in allowed.items():
        value = body.get(name)
        # bool is a subclass of int; neither is accepted where the other is meant
        if value is not None and (not isinstance(value, kind) or (kind is not bool and isinstance(value, bool))):
            raise ApiError(400, "invalid_field", f"Field '{name}' must be a {_type_name(kind)}.")
        if isinstance(value, str) and "\x00" in value:
            raise ApiError(400, "invalid_field", f"Field '{name}' must not contain NUL characters.")
    return {name: body.get(name) for name in allowed}


def chat_request(request: Request, max_chars: int) -> ChatRequest:
    """Validate POST /api/chat."""
    body = json_object(request, {
        "message": str, "session_id": str, "role": str, "user_id": str, "training_consent": bool, "stream": bool,
    })
    message = (body["message"] or "").strip()
    if not message:
        raise ApiError(400, "empty_message", "Field 'message' is required and must not be blank.")
    if len(message) > max_chars:
        raise ApiError(
            400, "message_too_long", f"The message has {len(message)} characters; the limit is {max_chars}.",
        )
    if body["role"] is not None and body["role"] not in ROLES:
        raise ApiError(400, "invalid_field", f"Field 'role' must be one of: {', '.join(ROLES)}.")
    if body["user_id"] is not None and len(body["user_id"]) > 128:
        raise ApiError(400, "invalid_field", "Field 'user_id' must be at most 128 characters.")
    return ChatRequest(
        message=message, session_id=body["session_id"], role=body["role"], user_id=body["user_id"],
        training_consent=body["training_consent"], stream=bool(body["stream"]),
    )


def consent_request(request: Request) -> bool:
    """Validate PATCH /api/sessions/<id>."""
    consent = json_object(request, {"training_consent": bool})["training_consent"]
    if consent is None:
        raise ApiError(400, "invalid_field", "Field 'training_consent' (true or false) is required.")
    return consent


def _type_name(kind: type) -> str:
    """How a JSON user would call the type."""
    return {str: "string", bool: "boolean (true or false)", int: "whole number"}.get(kind, kind.__name__)
