"""Request bodies checked field by field, with errors a client can act on."""

from __future__ import annotations

import re

from flask import Request

from assistant.prompts import ROLES, build_messages
from assistant.turn import ChatRequest
from storage.memories import MemoryNotFound
from storage.conversations import SessionNotFound
from web.errors import ApiError

# What storage issues (secrets.token_urlsafe): anything else cannot name a conversation or a memory.
SESSION_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
PAGE, MAX_PAGE = 100, 500  # messages per history page: by default, and at most
MAX_TRY_TURNS = 50  # messages in a conversation an admin tries a version on


def json_object(request: Request, allowed: dict[str, type]) -> dict:
    """The body as a dict of known fields with the right types; null counts as absent."""
    try:
        body = request.get_json(silent=True, force=True)
    except RecursionError:  # nesting deeper than the parser's stack, in well under 64 KB
        raise ApiError(400, "invalid_json", "The request body is nested too deeply to be a chat request.") from None
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
        if isinstance(value, str) and not _is_unicode_text(value):
            raise ApiError(400, "invalid_field", f"Field '{name}' is not valid Unicode text "
                           "(it holds half of a UTF-16 surrogate pair); send the whole character.")
    return {name: body.get(name) for name in allowed}


def checked_session_id(value: str) -> str:
    """A session id as issued, or SessionNotFound (404) without asking the database."""
    if not SESSION_ID.fullmatch(value):
        raise SessionNotFound(value)
    return value


def checked_memory_id(value: str) -> str:
    """A memory id as issued, or MemoryNotFound (404) without asking the database."""
    if not SESSION_ID.fullmatch(value):
        raise MemoryNotFound(value)
    return value


def chat_request(request: Request, max_chars: int) -> ChatRequest:
    """Validate POST /api/chat."""
    body = json_object(request, {
        "message": str, "session_id": str, "role": str, "user_id": str, "training_consent": bool, "stream": bool,
        "remember": bool, "memory_id": str,
    })
    message = (body["message"] or "").strip()
    if not message:
        raise ApiError(400, "empty_message", "Field 'message' is required and must not be blank.")
    if len(message) > max_chars:
        raise ApiError(
            400, "message_too_long", f"The message has {len(message)} characters; the limit is {max_chars}.",
        )
    _check_role(body["role"])
    if body["user_id"] is not None and len(body["user_id"]) > 128:
        raise ApiError(400, "invalid_field", "Field 'user_id' must be at most 128 characters.")
    if body["session_id"] is not None:
        checked_session_id(body["session_id"])
    if body["memory_id"] is not None:
        checked_memory_id(body["memory_id"])
        if body["remember"] is False:
            raise ApiError(400, "invalid_field", "Field 'remember' is false but a 'memory_id' was sent: "
                           "leave memory_id out to chat without memory.")
    return ChatRequest(
        message=message, session_id=body["session_id"], role=body["role"], user_id=body["user_id"],
        training_consent=body["training_consent"], stream=bool(body["stream"]),
        remember=bool(body["remember"]), memory_id=body["memory_id"],
    )


def try_request(request: Request, max_chars: int) -> list[dict]:
    """Validate POST /api/admin/models/<version>/try: the conversation as the model will see it, system prompt
    first (the patient's unless ``role`` says clinician), then user and assistant turns ending with the user's."""
    body = json_object(request, {"messages": list, "role": str})
    turns = body["messages"] or []
    if not turns or len(turns) > MAX_TRY_TURNS:
        raise ApiError(400, "invalid_field", f"Field 'messages' must hold 1 to {MAX_TRY_TURNS} "
                       "{\"role\": \"user\" or \"assistant\", \"content\": text} objects.")
    for i, turn in enumerate(turns):
        if not (isinstance(turn, dict) and set(turn) == {"role", "content"} and turn["role"] in ("user", "assistant")
                and isinstance(turn["content"], str) and 0 < len(turn["content"].strip()) <= max_chars
                and _is_unicode_text(turn["content"])
                and "\x00" not in turn["content"]):
            raise ApiError(400, "invalid_field", f"messages[{i}] must be {{\"role\": \"user\" or \"assistant\", "
                           f"\"content\": text of 1 to {max_chars} characters}}.")
    if turns[-1]["role"] != "user":
        raise ApiError(400, "invalid_field", "The last of 'messages' must be the user's, for the model to answer.")
    _check_role(body["role"])
    history = [(turn["role"], turn["content"]) for turn in turns[:-1]]
    return build_messages(body["role"] or "patient", history, turns[-1]["content"])


def consent_request(request: Request) -> bool:
    """Validate PATCH /api/sessions/<id>."""
    consent = json_object(request, {"training_consent": bool})["training_consent"]
    if consent is None:
        raise ApiError(400, "invalid_field", "Field 'training_consent' (true or false) is required.")
    return consent


def training_request(request: Request) -> bool:
    """Validate POST /api/admin/training: whether to retrain from the base model (no body: continue)."""
    if not request.get_data():
        return False
    return bool(json_object(request, {"from_base": bool})["from_base"])


def page_request(request: Request) -> tuple[int, int | None]:
    """``limit`` (1..MAX_PAGE, PAGE by default) and ``before`` (a message id) of a history request."""
    limit = _whole_number(request.args.get("limit"), "limit", 1, MAX_PAGE)
    before = _whole_number(request.args.get("before"), "before", 1, 2**63 - 1)
    return (PAGE if limit is None else limit), before


def _check_role(role: str | None) -> None:
    """A role field, when given, names a role the service has."""
    if role is not None and role not in ROLES:
        raise ApiError(400, "invalid_field", f"Field 'role' must be one of: {', '.join(ROLES)}.")


def _whole_number(value: str | None, name: str, low: int, high: int) -> int | None:
    """A query parameter as an int within [low, high]; None when absent."""
    if value is None:
        return None
    if not (value.isascii() and value.isdigit() and len(value) <= 19 and low <= int(value) <= high):
        raise ApiError(400, "invalid_field", f"Query parameter '{name}' must be a whole number from {low} to {high}.")
    return int(value)


def _is_unicode_text(value: str) -> bool:
    """False for a string with a lone surrogate, which no database or UTF-8 encoder accepts."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _type_name(kind: type) -> str:
    """How a JSON user would call the type."""
    return {str: "string", bool: "boolean (true or false)", int: "whole number"}.get(kind, kind.__name__)
