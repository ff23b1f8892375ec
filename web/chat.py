"""POST /api/chat: store the message, screen it, get a reply, store that, answer."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Callable

from flask import Blueprint, Response, g, jsonify, request
from sqlalchemy.exc import InterfaceError, OperationalError

from assistant import prompts
from assistant.completion import (
    Completion, ProviderError, ProviderFailed, ProviderPromptTooLong, ProviderRateLimited, ProviderTimeout,
    ProviderUnavailable,
)
from assistant.safety import texts
from assistant.safety.labelled import CONTEXT_MESSAGES
from assistant.safety.patterns import HIGH, MEDIUM, NONE
from assistant.safety.screener import Screener
from assistant.shadow import Shadow
from storage.repo import Repo, SessionErased, Turn
from web.errors import ApiError, database_unavailable
from web.services import services
from web.validation import chat_request

log = logging.getLogger(__name__)
bp = Blueprint("chat", __name__)

ERASED_WHILE_ANSWERING = "This conversation was deleted while the reply was being written; the reply was not kept."
STATUS_BY_ERROR = {ProviderUnavailable: 503, ProviderRateLimited: 503, ProviderTimeout: 504, ProviderFailed: 502,
                   ProviderPromptTooLong: 400}


@dataclass(frozen=True)
class TurnContext:
    """What storing and answering one turn needs to know."""

    repo: Repo
    turn: Turn
    risk_level: str
    resources: str
    notify: Callable[[], None]  # tells auto-training a reply was stored
    screener: Screener
    shadowing: Shadow

    def store(self, completion: Completion, status: str = "ok", error: str | None = None) -> int:
        """Store the reply, log one line about it (never its text) and notify auto-training."""
        message_id = self.repo.store_reply(
            self.turn.session_id, self.risk_level, content=completion.text, source=completion.source,
            model=completion.model, status=status, error=error, latency_ms=completion.latency_ms,
            prompt_tokens=completion.prompt_tokens, completion_tokens=completion.completion_tokens,
            finish_reason=completion.finish_reason, fallback=completion.fallback,
        )
        log.info(
            "Chat reply stored: message=%s source=%s status=%s risk=%s latency_ms=%s tokens=%s/%s fallback=%s",
            message_id, completion.source, status, self.risk_level, completion.latency_ms,
            completion.prompt_tokens, completion.completion_tokens, completion.fallback,
        )
        self.notify()
        return message_id

    def answer(self, completion: Completion, message_id: int, status: str = "ok") -> dict:
        """The fields every successful reply carries."""
        return {
            "reply": completion.text, "session_id": self.turn.session_id, "message_id": message_id,
            "source": completion.source, "model": completion.model, "risk_level": self.risk_level,
            "fallback": completion.fallback, "status": status, "memory_id": self.turn.memory_id,
        }

    def note(self) -> str:
        """What follows a model's reply on a risky turn: resources (for a clinician's patient when high)."""
        if self.risk_level == HIGH:
            return texts.clinician_note(self.resources)
        return texts.resources_note(self.resources) if self.risk_level == MEDIUM else ""

    def shadow(self, completion: Completion, message_id: int, messages: list[dict]) -> None:
        """Offer a turn Groq answered, with no risk screened, to shadow traffic: after the user has the reply."""
        if completion.source == "groq" and self.risk_level == NONE:
            self.shadowing.offer(self.turn, message_id, messages, completion.text)

    def crisis(self, status: str = "ok") -> dict:
        """Store the crisis reply and answer with it."""
        completion = Completion(text=texts.crisis_reply(self.resources), model="safety", latency_ms=0, source="safety")
        return self.answer(completion, self.store(completion), status)

    def withhold(self, completion: Completion) -> dict:
        """Keep an unsafe reply for review only (never shown, never trained on); the crisis reply instead."""
        self.store(completion, "blocked")
        log.warning("Model reply withheld by the safety layer: source=%s model=%s", completion.source, completion.model)
        return self.crisis(status="blocked")

    def failure(self, error: ProviderError, source: str, model: str) -> ApiError:
        """Store the failed reply and build the error the client gets, with its session_id."""
        message_id = self.store(Completion(text="", model=model, source=source), "error", error.code)
        headers = {"Retry-After": str(error.retry_after)} if error.retry_after else None
        return ApiError(
            STATUS_BY_ERROR.get(type(error), 502), error.code, error.message, headers,
            session_id=self.turn.session_id, message_id=message_id,
        )


@bp.post("/api/chat")
def chat():
    """Answer one chat message, as JSON or as a server-sent event stream."""
    svc = services()
    body = chat_request(request, svc.settings.max_message_chars)
    context = svc.repo.recent_user_messages(body.session_id, CONTEXT_MESSAGES) if body.session_id else []
    if (body.remember or body.memory_id) and not svc.settings.memory_enabled:
        raise ApiError(403, "memory_disabled", "Memory across sessions is turned off on this service; "
                       "leave out remember and memory_id.")
    screening = svc.safety.screen(body.message, context)
    g.risk_level = screening.risk_level  # what a database error's answer needs to know
    turn = svc.repo.start_turn(
        body.session_id, body.role, body.user_id, body.training_consent,
        svc.settings.training_consent_default, body.message, screening.risk_level, body.memory_id, body.remember,
    )
    g.session_id, g.message_id = turn.session_id, turn.message_id
    ctx = TurnContext(svc.repo, turn, screening.risk_level, svc.settings.crisis_resources,
                      _notifier(svc, turn.remembered), svc.safety, svc.shadow)
    if screening.is_crisis and turn.role == "patient":  # a clinician asking about a patient gets an answer
        log.info("Crisis reply given: the %s layer screened the message high risk", screening.layer)
        answer = ctx.crisis()
        return _stream_whole(answer) if body.stream else jsonify(answer)
    history = svc.repo.history(turn.session_id, turn.message_id, svc.settings.history_turns)
    messages = prompts.build_messages(turn.role, history, body.message, _recalled(svc, turn, body.message))
    assistant = svc.assistant
    if body.stream:
        return _stream_reply(ctx, assistant, messages)
    try:
        completion = assistant.complete(messages)
    except ProviderError as e:
        raise ctx.failure(e, assistant.source, assistant.model) from e
    if ctx.screener.unsafe(completion.text):
        return jsonify(ctx.withhold(completion))
    completion.text += ctx.note()
    message_id = ctx.store(completion)
    response = jsonify(ctx.answer(completion, message_id))
    ctx.shadow(completion, message_id, messages)
    return response


def _notifier(svc, remembered: bool) -> Callable[[], None]:
    """What to wake after a reply is stored: auto-training, and the memory indexer for a remembered conversation."""
    def notify_both() -> None:
        svc.training.notify()
        svc.memory.notify()

    return notify_both if remembered else svc.training.notify


def _recalled(svc, turn: Turn, message: str) -> str | None:
    """The memory block for a turn that named its memory; a failure costs the turn its memories, not its reply."""
    if turn.memory_id is None:
        return None
    try:
        return svc.memory.recall(turn.memory_id, turn.session_id, message)
    except Exception as e:
        log.warning("Recalling earlier conversations failed (%s); answering without them", type(e).__name__)
        return None


def _stream_reply(ctx: TurnContext, assistant, messages: list[dict]) -> Response:
    """Relay the reply a screened sentence at a time; whatever was generated is stored, even if the client leaves."""
    try:
        upstream = assistant.stream(messages)
    except ProviderError as e:
        raise ctx.failure(e, assistant.source, assistant.model) from e
    gate = ctx.screener.gate()

    def events():
        status, error, lost = "truncated", None, None  # stays truncated if the client disconnects mid-stream
        try:
            for delta in upstream:
                if shown := gate.feed(delta):
                    yield _event({"delta": shown})
                if gate.blocked:
                    break
            if shown := gate.finish():
                yield _event({"delta": shown})
            if not gate.blocked and (note := ctx.note()):
                upstream.completion.text += note
                yield _event({"delta": note})
            status = "blocked" if gate.blocked else "ok"
        except ProviderError as e:
            status, error = "error", e
        finally:
            upstream.close()
            try:
                message_id = ctx.store(upstream.completion, status, error and error.code)
            except SessionErased:  # erased by its owner while the reply was being made
                message_id = None
            except (OperationalError, InterfaceError) as e:
                message_id, lost = None, e
        if lost is not None:
            yield _event({"error": database_unavailable(lost, ctx.risk_level, ctx.resources,
                                                        session_id=ctx.turn.session_id,
                                                        message_id=ctx.turn.message_id)})
        elif message_id is None:
            yield _event({"error": {"code": "session_deleted", "message": ERASED_WHILE_ANSWERING}})
        elif error is not None:
            yield _event({"error": {"code": error.code, "message": error.message,
                                    "session_id": ctx.turn.session_id, "message_id": message_id}})
        elif gate.blocked:
            yield from _withheld_events(ctx, bool(gate.shown))
        else:
            yield _event({"done": True, **ctx.answer(upstream.completion, message_id)})
            ctx.shadow(upstream.completion, message_id, messages)

    return _sse(events())


def _withheld_events(ctx: TurnContext, retract: bool):
    """The crisis reply in place of a withheld one; the client first drops the screened text it showed."""
    log.warning("Streamed model reply withheld by the safety layer")
    answer = ctx.crisis(status="blocked")
    if retract:
        yield _event({"retract": True})
    yield _event({"delta": answer["reply"]})
    yield _event({"done": True, **answer})


def _stream_whole(answer: dict) -> Response:
    """A reply that is ready at once, in the streaming format."""
    return _sse(iter([_event({"delta": answer["reply"]}), _event({"done": True, **answer})]))


def _event(data: dict) -> str:
    """One server-sent event."""
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


def _sse(events) -> Response:
    """A text/event-stream response that proxies must not buffer."""
    return Response(events, mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
