"""GET /openapi.json: the HTTP contract as an OpenAPI 3.1 document.

Limits come from the code that enforces them (settings, validation); tests/test_openapi.py checks
that every registered route is described and schemathesis checks the live app's answers against it.
"""

from __future__ import annotations

from flask import Blueprint, jsonify

from assistant.prompts import ROLES
from assistant.safety.patterns import HIGH, MEDIUM, NONE
from storage.training_runs import RUN_FIELDS
from web.services import services
from web.validation import MAX_PAGE, MAX_TRY_TURNS, PAGE, SESSION_ID

bp = Blueprint("openapi", __name__)

STRING, BOOLEAN = {"type": "string"}, {"type": "boolean"}
ID = {"type": "integer", "minimum": 1}
COUNT = {"type": "integer", "minimum": 0}
RISK_LEVEL = {"enum": [NONE, MEDIUM, HIGH]}
LAYERS = ("patterns", "semantic", "context", "judge")  # what may set a message's risk level
# What str.strip() removes, spelt out: regex dialects disagree on what \s covers (\x1c-\x1f, \x85).
WHITESPACE = "".join(f"\\u{code:04x}" for code in range(0x10000) if chr(code).isspace())
NULLABLE_STRING, NULLABLE_BOOLEAN = {"type": ["string", "null"]}, {"type": ["boolean", "null"]}


def _object(properties: dict, required: tuple = (), closed: bool = False) -> dict:
    """A JSON object schema; ``closed`` rejects fields not listed."""
    schema = {"type": "object", "properties": properties, "required": list(required)}
    return {**schema, "additionalProperties": False} if closed else schema


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(description: str, schema: dict, headers: tuple = ()) -> dict:
    """A response with a JSON body."""
    answer = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        answer["headers"] = {name: {"$ref": f"#/components/headers/{name}"} for name in headers}
    return answer


def _errors(*statuses: int) -> dict:
    """The shared error responses, by status."""
    return {str(status): {"$ref": f"#/components/responses/E{status}"} for status in statuses}


# What each error status means anywhere in this API, and the headers it carries.
ERRORS = {
    400: ("Invalid request: invalid_json, invalid_field, unknown_field, empty_message, message_too_long, "
          "conversation_too_long (for the model's context).", ()),
    401: ("unauthorized: a wrong or missing admin token (metrics token on /metrics).", ("WWW-Authenticate",)),
    403: ("admin_disabled: no ADMIN_TOKEN is set on the server; metrics_disabled: no METRICS_TOKEN; "
          "memory_disabled: MEMORY_ENABLED=0.", ()),
    404: ("session_not_found, memory_not_found, or model_not_found for a version.", ()),
    409: ("role_mismatch or memory_mismatch (chat), or training_running (training).", ()),
    410: ("session_deleted: the conversation was erased; memory_forgotten: the memory id was forgotten.", ()),
    413: ("body_too_large: the body is over 64 KB.", ()),
    429: ("rate_limited: over CHAT_RATE_LIMIT, or ADMIN_RATE_LIMIT refused admin calls.", ("Retry-After",)),
    502: ("upstream_error: the model failed.", ()),
    503: ("database_unavailable (Retry-After: 5), assistant_unavailable, upstream_rate_limited, "
          "model_store_unavailable or assistant_busy (trying a version while LOCAL_MAX_QUEUE tries wait).",
          ("Retry-After",)),
    504: ("upstream_timeout: the model did not answer in time.", ()),
}
ADMIN = (401, 403, 429, 503)
# Any request, before the app sees it: gunicorn refuses a request line over its 4,094 bytes, in HTML.
URI_TOO_LONG = {"description": "The request line (path and query) is over 4,094 bytes: gunicorn refuses it before "
                               "the app, with an HTML page, not the JSON error."}


def _operation(endpoint: str, summary: str, responses: dict, *errors: int, admin: bool = False, **fields) -> dict:
    """One operation, named by the Flask endpoint that answers it: its own responses, then the shared
    errors it may answer."""
    statuses = sorted(set(errors) | (set(ADMIN) if admin else set()) | {414})  # 414: any request, from gunicorn
    operation = {"operationId": endpoint, "summary": summary, **fields,
                 "responses": {**responses, **_errors(*statuses)}}
    if admin:
        operation["security"] = [{"admin": []}]
    return operation


def _trimmed_text(max_chars: int) -> str:
    """A pattern for text that is 1..max_chars characters once trimmed (as the server counts it), no NUL:
    a length limit alone would refuse what the server accepts, surrounded by whitespace."""
    space, solid = f"[{WHITESPACE}]", f"[^{WHITESPACE}\\u0000]"
    core = solid + (f"(?:[^\\u0000]{{0,{max_chars - 2}}}{solid})?" if max_chars > 1 else "")
    return f"^{space}*{core}{space}*$"


def _schemas(max_chars: int) -> dict:
    """The bodies, in and out."""
    message = {"type": "string", "pattern": _trimmed_text(max_chars),
               "description": "Not blank, no NUL; at most MAX_MESSAGE_CHARS characters once trimmed."}
    session_id = {"type": "string", "pattern": f"^{SESSION_ID.pattern}$"}
    reply = {
        "reply": STRING, "session_id": session_id, "message_id": ID,
        "source": {"enum": ["groq", "local", "safety"]}, "model": STRING,
        "risk_level": RISK_LEVEL,
        "fallback": {"type": ["string", "null"], "pattern": "^(local_(unavailable|timeout|error|busy)|crisis_[a-z_]+)$",
                     "description": "Why the local model did not answer (Groq did), or why the fixed crisis reply "
                                    "answered instead of Groq (crisis_timeout, crisis_<error code>)."},
        "status": {"enum": ["ok", "blocked"]},
        "memory_id": {"type": ["string", "null"], "pattern": session_id["pattern"],
                      "description": "The memory this turn recalled from (given, or created by remember: true)."},
    }
    resources = {"type": "array", "minItems": 1, "description": "The crisis lines for the conversation's language, "
                 "on every medium- or high-risk answer.",
                 "items": _object({"name": STRING, "contact": {"type": "string"}, "how": STRING},
                                  ("name", "contact", "how"), closed=True)}
    error = _object({"code": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"}, "message": STRING,
                     "session_id": session_id, "message_id": ID}, ("code", "message"))
    run = _object({name: {} for name in RUN_FIELDS}, ("id", "status"))
    return {
        "Error": _object({"error": error}, ("error",)),
        "ChatRequest": _object({  # null counts as absent for every optional field
            "message": message,
            "session_id": {"type": ["string", "null"], "pattern": session_id["pattern"],
                           "description": "Continue this conversation."},
            "role": {"enum": [*ROLES, None], "description": "Fixed for a conversation; patient by default."},
            "user_id": {"type": ["string", "null"], "maxLength": 128, "pattern": r"^[^\x00]*$"},
            "training_consent": NULLABLE_BOOLEAN, "stream": NULLABLE_BOOLEAN,
            "remember": {"type": ["boolean", "null"], "description": "true without memory_id: remember this "
                         "conversation under a new memory_id (returned); false with a memory_id is an error."},
            "memory_id": {"type": ["string", "null"], "pattern": session_id["pattern"],
                          "description": "Recall earlier conversations remembered under this id, and remember "
                                         "this one there."},
        }, ("message",), closed=True) | {"not": _object({"remember": {"const": False}, "memory_id": STRING},
                                                         ("remember", "memory_id"))},
        "StreamEvent": _object({"data": {
            "type": "string", "contentMediaType": "application/json",
            "contentSchema": {"anyOf": [_object({"resources": resources, "risk_level": RISK_LEVEL},
                                                ("resources", "risk_level")),
                                        _object({"delta": STRING}, ("delta",)),
                                        _object({"retract": {"const": True}}, ("retract",)),
                                        {**_object({"done": {"const": True}}, ("done",)), "allOf": [_ref("ChatReply")]},
                                        _object({"error": error}, ("error",))]},
            "description": "JSON: first, on a medium- or high-risk turn, {resources, risk_level}; {delta} pieces of "
                           "the reply; {retract: true} drops what was shown (a withheld "
                           "reply follows); {done: true, ...ChatReply} last; or {error} if the reply failed.",
        }}, ("data",)),
        "ChatReply": _object({**reply, "resources": resources}, tuple(reply)),
        "Message": _object({
            "id": ID, "role": {"enum": ["user", "assistant"]}, "content": STRING, "created_at": STRING,
            "risk_level": RISK_LEVEL, "source": NULLABLE_STRING, "model": NULLABLE_STRING,
            "status": NULLABLE_STRING,
        }, ("id", "role", "content", "created_at", "risk_level")),
        "MessagePage": _object({"session_id": session_id, "messages": {"type": "array", "items": _ref("Message")},
                                "next_before": {"type": ["integer", "null"]}},
                               ("session_id", "messages", "next_before")),
        "Consent": _object({"training_consent": BOOLEAN}, ("training_consent",), closed=True),
        "TryRequest": _object({
            "messages": {"type": "array", "minItems": 1, "maxItems": MAX_TRY_TURNS,
                         "items": _object({"role": {"enum": ["user", "assistant"]}, "content": message},
                                          ("role", "content"), closed=True),
                         "description": "Oldest first; the last must be the user's."},
            "role": {"enum": [*ROLES, None], "description": "Whose system prompt: patient by default."},
        }, ("messages",), closed=True),
        "Tried": _object({"reply": STRING, "version": STRING, "latency_ms": COUNT,
                          "finish_reason": {"enum": ["stop", "length"]}, "unsafe": BOOLEAN},
                         ("reply", "version", "latency_ms", "finish_reason", "unsafe")),
        "ConsentSet": _object({"session_id": session_id, "role": {"enum": list(ROLES)},
                               "training_consent": BOOLEAN}, ("session_id", "role", "training_consent")),
        "Database": _object({"engine": {"enum": ["sqlite", "postgresql"]}, "reachable": BOOLEAN, "writable": BOOLEAN,
                             "persistent": BOOLEAN, "pgvector": BOOLEAN,
                             "tables": {"type": "array", "items": STRING}},
                            ("engine", "reachable", "writable", "persistent", "pgvector")),
        "Run": run,
        "Version": _object({"name": STRING, "active": BOOLEAN, "rejected": BOOLEAN, "run_id": {},
                            "metrics": {"type": "object"}, "examples": {"type": "object"},
                            "gate": {"type": "object"}, "duration_s": {},
                            "evaluation": {"type": ["object", "null"]},
                            "parent": {**NULLABLE_STRING, "description": "The version this one continued from."},
                            "trained_on": {"type": ["object", "null"], "description": "new, replay, held_out"},
                            "weights": {"enum": ["adapter", "full"]}}, ("name", "active", "rejected")),
    }


def document(max_chars: int) -> dict:
    """The whole document for a server whose messages may hold ``max_chars`` characters."""
    session = {"name": "session_id", "in": "path", "required": True,
               "description": "The id POST /api/chat returned: whoever holds it may read and erase.",
               "schema": {"type": "string", "pattern": f"^{SESSION_ID.pattern}$"}}
    html = {"200": {"description": "The page.", "content": {"text/html": {"schema": STRING}}}}
    database = {"200": _json("Reachable and writable.", _ref("Database")),
                "503": _json("Unreachable or read-only.", _ref("Database"))}
    paths = {
        "/": {"get": _operation("pages.chat_page", "The chat page for patients and clinicians.", html)},
        "/admin": {"get": _operation("pages.admin_page", "The admin dashboard; its data comes from the admin API.",
                                     html)},
        "/openapi.json": {"get": _operation("openapi.openapi", "This document.",
                                            {"200": _json("OpenAPI 3.1.", {"type": "object"})})},
        "/api/chat": {"post": _operation(
            "chat.chat",
            "Answer one chat message, as JSON or (stream: true) as server-sent events.",
            {"200": {"description": "The reply. A stream sends {delta} events, then {done: true, ...the "
                                    "ChatReply fields}, or an {error} event if the model fails midway.",
                     "content": {"application/json": {"schema": _ref("ChatReply")},
                                 "text/event-stream": {"schema": _ref("StreamEvent")}},
                     "links": {name: {"operationId": endpoint,
                                      "parameters": {"session_id": "$response.body#/session_id"}}
                               for name, endpoint in (("ReadMessages", "sessions.messages"),
                                                      ("SetConsent", "sessions.set_consent"),
                                                      ("Erase", "sessions.erase"))}
                     | {"Forget": {"operationId": "memories.forget",
                                   "parameters": {"memory_id": "$response.body#/memory_id"}}}}},
            400, 403, 404, 409, 410, 413, 429, 502, 503, 504,
            requestBody={"required": True, "content": {"application/json": {"schema": _ref("ChatRequest")}}},
        )},
        "/api/sessions/{session_id}": {
            "parameters": [session],
            "patch": _operation(
                "sessions.set_consent", "Allow or withdraw the use of this conversation for training.",
                {"200": _json("The consent now recorded.", _ref("ConsentSet"))}, 400, 404, 410, 413, 503,
                requestBody={"required": True, "content": {"application/json": {"schema": _ref("Consent")}}},
            ),
            "delete": _operation("sessions.erase",
                                 "Erase the conversation's messages for good; the id then answers 410.",
                                 {"204": {"description": "Erased."}}, 404, 410, 503),
        },
        "/api/memories/{memory_id}": {"delete": _operation(
            "memories.forget",
            "Forget everything remembered under this id (the conversations stay until erased); it then answers 410.",
            {"204": {"description": "Forgotten."}}, 404, 410, 503,
            parameters=[{"name": "memory_id", "in": "path", "required": True,
                         "description": "The memory_id POST /api/chat returned: whoever holds it may forget.",
                         "schema": {"type": "string", "pattern": f"^{SESSION_ID.pattern}$"}}],
        )},
        "/api/sessions/{session_id}/messages": {"get": _operation(
            "sessions.messages",
            "A page of the conversation, oldest first: the newest `limit` messages (before `before`).",
            {"200": _json("The page; next_before is the `before` of the next older page, or null.",
                          _ref("MessagePage"))}, 400, 404, 410, 503,
            parameters=[session,
                        {"name": "limit", "in": "query", "schema": {**ID, "maximum": MAX_PAGE, "default": PAGE}},
                        {"name": "before", "in": "query", "schema": {**ID, "maximum": 2**63 - 1}}],
        )},
        "/health": {"get": _operation("health.alive", "Liveness: the process answers; touches nothing else.",
                                      {"200": _json("Alive.", _object({"status": {"const": "ok"}}, ("status",)))})},
        "/health/ready": {"get": _operation(
            "health.ready",
            "Readiness, the deploy healthcheck: the schema is current and the local model (if used) settled.",
            {status: _json(text, _object({"ready": BOOLEAN, "waiting_for": {"type": "array", "items": {
                "enum": ["database", "migrations", "local_model"]}}}, ("ready",)))
             for status, text in (("200", "Ready."), ("503", "Not ready yet, and what it waits for."))},
        )},
        "/health/db": {"get": _operation("health.database", "Engine, reachable, writable, persistent.", database)},
        "/health/db/tables": {"get": _operation("health.tables", "The database check and its tables.", database)},
        "/metrics": {"get": _operation(
            "metrics.metrics",
            "Prometheus metrics of every worker, in the text format (names and labels: docs/DEPLOY.md).",
            {"200": {"description": "The metrics.", "content": {"text/plain": {"schema": STRING}}}}, 401, 403,
            security=[{"metrics": []}],
        )},
        "/api/stats": {"get": _operation(
            "admin.stats",
            "Totals, training eligibility, training and serving state.",
            {"200": _json("The overview.", _object({name: {} for name in (
                "messages", "sessions", "by_author", "user_messages_by_role", "replies_by_source",
                "messages_per_day", "eligible_since_last_training", "auto_train_threshold", "auto_training",
                "active_model", "use_local_ai", "local_model", "groq", "safety", "database")},
                ("messages", "eligible_since_last_training", "auto_train_threshold")))}, admin=True,
        )},
        "/api/admin/learning": {"get": _operation(
            "admin.learning",
            "What is stored to learn from and remember: messages, embeddings, backlog, memory ids, vector backend.",
            {"200": _json("The counts.", _object({name: {} for name in (
                "messages", "embedded_messages", "backlog", "memory_ids", "near_duplicates_dropped", "last_run_id",
                "vector_backend", "embedding_model", "embedding_error", "memory_enabled")},
                ("messages", "embedded_messages", "backlog", "memory_ids", "vector_backend")))}, admin=True,
        )},
        "/api/admin/safety": {"get": _operation(
            "admin.safety",
            "What the crisis screen did over the last 30 days: user messages per level and per layer that set it, "
            "the safety judge's agreement with the local screen, and the 20 newest screened messages (from "
            "conversations with training consent), redacted.",
            {"200": _json("The safety report.", _object({
                "days": COUNT, "by_level": _object({level: COUNT for level in (NONE, MEDIUM, HIGH)},
                                                   (NONE, MEDIUM, HIGH)),
                "by_layer": {"type": "array", "items": _object({
                    "level": RISK_LEVEL, "layer": {"enum": [*LAYERS, None]}, "count": COUNT},
                    ("level", "layer", "count"))},
                "judge": _object({"answered": COUNT, "agreed": COUNT, "overruled": COUNT,
                                  "agreement": {"type": ["number", "null"]}},
                                 ("answered", "agreed", "overruled", "agreement")),
                "recent": {"type": "array", "items": _object({
                    "message_id": ID, "created_at": STRING, "text": STRING, "risk_level": RISK_LEVEL,
                    "risk_layer": {"enum": list(LAYERS)}, "judge_level": {"enum": [NONE, MEDIUM, HIGH, None]},
                    "role": {"enum": list(ROLES)}},
                    ("message_id", "created_at", "text", "risk_level", "risk_layer", "judge_level", "role"))}},
                ("days", "by_level", "by_layer", "judge", "recent")))}, admin=True,
        )},
        "/api/admin/shadow": {"get": _operation(
            "admin.shadow",
            "The active version's shadow replies (SHADOW_SAMPLE_RATE): counts, mean similarity to Groq's replies, "
            "and the newest pairs, redacted.",
            {"200": _json("The shadow report.", _object({
                "version": NULLABLE_STRING, "count": COUNT, "similarity_mean": {"type": ["number", "null"]},
                "unsafe": COUNT, "degenerate": COUNT, "sample_rate": {"type": "number"}, "running": BOOLEAN,
                "verdict": _object({"ready": BOOLEAN, "reasons": {"type": "array", "items": STRING}},
                                   ("ready", "reasons")),
                "recent": {"type": "array", "items": _object({
                    "prompt": STRING, "groq": STRING, "local": STRING, "similarity": {"type": ["number", "null"]},
                    "unsafe": BOOLEAN, "degenerate": NULLABLE_STRING, "created_at": STRING},
                    ("prompt", "groq", "local", "similarity"))}},
                ("version", "count", "similarity_mean", "unsafe", "degenerate", "recent")))}, admin=True,
        )},
        "/api/admin/training": {
            "get": _operation("training.runs", "The 20 newest training runs and the running one.",
                              {"200": _json("Runs, newest first.", _object({
                                  "runs": {"type": "array", "items": _ref("Run")},
                                  "running": {"anyOf": [_ref("Run"), {"type": "null"}]}}, ("runs", "running")))},
                              admin=True),
            "post": _operation(
                "training.start", "Start a training run now, whatever the count of new messages. It continues the "
                "active version's adapter on what is new, with a replay of older examples, unless from_base is true.",
                {"202": _json("Started.", _object({"run_id": ID, "status": {"const": "running"}},
                                                  ("run_id", "status")))}, 400, 409, admin=True,
                requestBody={"required": False, "content": {"application/json": {"schema": _object(
                    {"from_base": {**NULLABLE_BOOLEAN, "description": "Retrain from the base model on the whole "
                                                                     "history."}}, (), closed=True)}}}),
        },
        "/api/admin/models": {"get": _operation(
            "training.models",
            "Model versions with their metrics, newest first, and the active one.",
            {"200": _json("Versions.", _object({"active": NULLABLE_STRING,
                                                "versions": {"type": "array", "items": _ref("Version")}},
                                               ("active", "versions")))}, admin=True,
        )},
        "/api/admin/models/{version}/try": {"post": _operation(
            "training.try_version",
            "A reply from any version to a conversation written here; nothing is stored. unsafe: the reply "
            "screening would withhold it from a user.",
            {"200": _json("The version's reply.", _ref("Tried"))}, 400, 404, 413, 502, 504, admin=True,
            parameters=[{"name": "version", "in": "path", "required": True, "schema": STRING}],
            requestBody={"required": True, "content": {"application/json": {"schema": _ref("TryRequest")}}},
        )},
        "/api/admin/models/{version}/activate": {"post": _operation(
            "training.activate",
            "Make a version active: promote a rejected candidate or roll back.",
            {"200": _json("Now active.", _object({"active": STRING}, ("active",)))}, 404, admin=True,
            parameters=[{"name": "version", "in": "path", "required": True, "schema": STRING}],
        )},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "TherapistAI", "version": "1",
                 "description": "Errors are always {\"error\": {\"code\", \"message\"}}; chat errors after "
                                "validation also carry session_id and message_id. Only a request line too long for "
                                "the server (414) is answered before the app, in HTML. Every answer from the app "
                                "carries X-Request-ID: the request's own when it was 1 to 128 characters of "
                                "A-Z a-z 0-9 . _ -, else a new one."},
        "paths": paths,
        "components": {
            "schemas": _schemas(max_chars),
            "responses": {**{f"E{status}": _json(text, _ref("Error"), headers)
                             for status, (text, headers) in ERRORS.items()}, "E414": URI_TOO_LONG},
            "headers": {"Retry-After": {"description": "Seconds to wait before trying again.", "schema": STRING},
                        "WWW-Authenticate": {"description": "Bearer.", "schema": STRING}},
            "securitySchemes": {"admin": {"type": "http", "scheme": "bearer",
                                          "description": "ADMIN_TOKEN, as 'Authorization: Bearer <token>'."},
                                "metrics": {"type": "http", "scheme": "bearer",
                                            "description": "METRICS_TOKEN, as 'Authorization: Bearer <token>'."}},
        },
    }


@bp.get("/openapi.json")
def openapi():
    """The contract, with this server's limits."""
    return jsonify(document(services().settings.max_message_chars))
