"""One chat turn: screen, store, route, withhold, store, notify, shadow, remember.

The user's message is screened (with the same user's recent messages) and stored before any model
is asked, so nothing is lost if a model fails. A message the local screen puts at medium or high goes
to the safety judge on Groq, beside the reply's own call; the judge's verdict, or the local one when
it has none in time, settles the turn's level before the first word reaches the user:
- a patient at high risk gets the crisis lines at once and a reply from Groq under the crisis
  protocol, or the fixed crisis reply when Groq fails, is late or is withheld (never an error);
- medium risk, and a clinician at any risk, get a normal reply from Groq with the lines beside it;
- a risky turn never reaches the local model, which was trained only on risk-free turns;
- otherwise the router answers (the local model when USE_LOCAL_AI=1, Groq as fallback).
Every reply is screened before it is shown; an unsafe one is kept for review and replaced.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextvars import copy_context
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from sqlalchemy.exc import InterfaceError, OperationalError

from assistant import prompts
from assistant.completion import Completion, ProviderError
from assistant.safety import texts
from assistant.safety.judge import Judge, Verdict
from assistant.safety.labelled import CONTEXT_MESSAGES
from assistant.safety.patterns import HIGH, MEDIUM, NONE
from assistant.safety.resources import CrisisResources, language
from assistant.safety.screener import Screener, Screening
from storage.conversations import Conversations, SessionErased, Turn
from telemetry.metrics import CHAT_TURNS, FALLBACKS, SCREENING_VERDICTS

log = logging.getLogger(__name__)

CRISIS_PROTOCOL = (Path(__file__).parent / "safety" / "crisis_protocol.md").read_text(encoding="utf-8")
CRISIS_THREADS = 16  # crisis replies being written at once per worker, beside the judge's verdicts
ERASED_WHILE_ANSWERING = "This conversation was deleted while the reply was being written; the reply was not kept."


@dataclass(frozen=True)
class ChatRequest:
    """A validated chat message and what came with it."""

    message: str
    session_id: str | None
    role: str | None
    user_id: str | None
    training_consent: bool | None
    stream: bool
    remember: bool = False
    memory_id: str | None = None


@dataclass(frozen=True)
class Screened:
    """A message's local verdict, before it is stored."""

    screening: Screening
    context: list[str]  # the same user's recent messages, oldest first
    lang: str  # the conversation's language, for the crisis lines


class TurnFailed(Exception):
    """No reply could be given; the user's message (and the failed reply) are stored under these ids."""

    def __init__(self, error: ProviderError, session_id: str, message_id: int):
        super().__init__(error.message)
        self.error, self.session_id, self.message_id = error, session_id, message_id


class Turns:
    """The turn pipeline of one process, over the services it needs."""

    def __init__(self, settings, conversations: Conversations, router, screener: Screener, judge: Judge, memory,
                 training, shadow):
        self.settings, self.conversations, self.router = settings, conversations, router
        self.screener, self.judge = screener, judge
        self.memory, self.training, self.shadow = memory, training, shadow
        self.resources = CrisisResources(settings.crisis_resources)
        self.crisis_model = router.groq.variant(router.groq.model, settings.crisis_reply_timeout)
        self._pool = ThreadPoolExecutor(CRISIS_THREADS, thread_name_prefix="crisis-reply")

    def screen(self, request: ChatRequest) -> Screened:
        """The local screen's verdict on a message, read with the same user's recent messages."""
        context = self.conversations.recent_user_messages(request.session_id, CONTEXT_MESSAGES) \
            if request.session_id else []
        return Screened(self.screener.screen(request.message, context), context,
                        language(*context, request.message))

    def start(self, request: ChatRequest, screened: Screened) -> "Answering":
        """Store the message (committed), and ask the judge and, for a patient in crisis, Groq at once."""
        screening = screened.screening
        turn = self.conversations.start_turn(
            request.session_id, request.role, request.user_id, request.training_consent,
            self.settings.training_consent_default, request.message, screening.risk_level, request.memory_id,
            request.remember, screening.layer,
        )
        # None when no risk was screened or the judge is off
        verdict = self.judge.ask(request.message, screened.context) if screening.risk_level != NONE else None
        answering = Answering(self, turn, request.message, screened, verdict)
        if answering.in_crisis:
            answering.crisis = self.crisis_call(answering)
        return answering

    def close(self) -> None:
        """Stop the background threads."""
        self.judge.close()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def crisis_call(self, answering: "Answering") -> Future | None:
        """Groq's reply under the crisis protocol, started now; None when CRISIS_REPLY=fixed."""
        if self.settings.crisis_reply == "fixed":
            return None
        system = CRISIS_PROTOCOL.format(resources=self.resources.text(answering.lang))
        history = self.conversations.history(answering.turn.session_id, answering.turn.message_id,
                                             self.settings.history_turns)
        messages = [{"role": "system", "content": system}, *({"role": a, "content": t} for a, t in history),
                    {"role": "user", "content": answering.message}]
        # copy_context: the call's log lines carry the request's id
        return self._pool.submit(copy_context().run, self.crisis_model.complete, messages)


class Answering:
    """One turn after its message was stored: answer it as JSON (``reply``) or as events (``stream``)."""

    def __init__(self, turns: Turns, turn: Turn, message: str, screened: Screened, verdict: Verdict | None):
        self.turns, self.turn, self.message, self.lang, self.verdict = turns, turn, message, screened.lang, verdict
        self.screened_level = self.risk_level = screened.screening.risk_level
        self.layer = screened.screening.layer
        self.crisis: Future | None = None  # Groq's reply under the crisis protocol, once asked
        self.crisis_asked = time.monotonic()
        self.fallback: str | None = None  # why the fixed crisis reply answered instead of Groq
        self.streamed = "false"  # the turn's label in the metrics: "true" once answered as events

    @property
    def in_crisis(self) -> bool:
        """A patient at high risk: crisis lines and the crisis protocol; a clinician asking about one is answered."""
        return self.risk_level == HIGH and self.turn.role == "patient"

    @property
    def resources_text(self) -> str:
        """The crisis lines for this conversation, as sentences."""
        return self.turns.resources.text(self.lang)

    def reply(self) -> dict:
        """The whole answer; TurnFailed when no model could answer a turn that is not a crisis."""
        if self.in_crisis:  # Groq's crisis reply is on its way; the judge may still lower the level
            self._settle()
            return self._crisis_answer() if self.in_crisis else self.reply()
        provider, messages = self._provider(), self._messages()
        try:
            completion = provider.complete(messages)
        except ProviderError as e:
            self._settle()
            if self.in_crisis:
                return self._crisis_answer()
            raise self._failed(e, provider) from e
        self._settle()
        if self.in_crisis:
            log.info("The safety judge raised the message to high risk: the reply to a calmer reading is dropped")
            return self._crisis_answer()
        return self._answer_with(completion, messages)

    def stream(self) -> Iterator[dict]:
        """The answer as events; failures before the first event raise TurnFailed, later ones are an event."""
        self.streamed = "true"
        upstream = provider = None
        if not self.in_crisis:
            provider, messages = self._provider(), self._messages()
            try:
                upstream = provider.stream(messages)
            except ProviderError as e:
                self._settle()
                if not self.in_crisis:
                    raise self._failed(e, provider) from e
        self._settle()
        if self.in_crisis:
            if upstream is not None:
                upstream.close()
            return self._crisis_events()
        if upstream is None:  # the judge lowered a crisis: the normal reply starts now
            return self.stream()
        return self._model_events(upstream, messages)

    def _settle(self) -> None:
        """Take the judge's verdict (waiting until its deadline) and record it with the message."""
        if self.verdict is None:
            return
        verdict, self.verdict = self.verdict, None
        judged = verdict.level()
        if judged is None:  # no verdict: the local level stands, and the stored message already says so
            return
        SCREENING_VERDICTS.labels(judged, "judge").inc()
        if judged != self.risk_level:
            log.info("The safety judge changed a message's level from %s to %s", self.risk_level, judged)
            self.risk_level, self.layer = judged, "judge"
        self.turns.conversations.judged(self.turn.message_id, self.risk_level, self.layer, judged)
        if self.in_crisis and self.crisis is None:
            self.crisis_asked = time.monotonic()
            self.crisis = self.turns.crisis_call(self)

    def _provider(self):
        """Who answers a turn that is not a crisis: Groq when the local screen found any risk (the local model
        never saw such a turn in training, whatever the judge says), else the router."""
        return self.turns.router if self.screened_level == NONE else self.turns.router.groq

    def _messages(self) -> list[dict]:
        """The prompt for a normal reply: system prompt, recalled memories, history, the message."""
        turns, turn = self.turns, self.turn
        history = turns.conversations.history(turn.session_id, turn.message_id, turns.settings.history_turns)
        return prompts.build_messages(turn.role, history, self.message, self._recalled())

    def _recalled(self) -> str | None:
        """The memory block for a turn that named its memory; a failure costs the turn its memories, not its reply."""
        if self.turn.memory_id is None:
            return None
        try:
            return self.turns.memory.recall(self.turn.memory_id, self.turn.session_id, self.message)
        except Exception as e:
            log.warning("Recalling earlier conversations failed (%s); answering without them", type(e).__name__)
            return None

    def _answer_with(self, completion: Completion, messages: list[dict]) -> dict:
        """Screen a whole model reply; store it and answer with it, or withhold it."""
        if self.turns.screener.unsafe(completion.text):
            return self._withhold(completion)
        completion.text += self._note()
        message_id = self._store(completion)
        answer = self._answer(completion, message_id)
        self._shadow(completion, message_id, messages)
        return answer

    def _crisis_answer(self) -> dict:
        """Groq's reply under the crisis protocol when it is in time and safe; the fixed crisis reply otherwise."""
        completion = self._crisis_completion()
        if completion is None:
            return self._fixed()
        if self.turns.screener.unsafe(completion.text):
            return self._withhold(completion)
        return self._answer(completion, self._store(completion))

    def _crisis_completion(self) -> Completion | None:
        """Groq's crisis reply, or None (with the reason logged and kept) when the fixed one must stand."""
        if self.crisis is None:
            return None
        left = self.turns.settings.crisis_reply_timeout - (time.monotonic() - self.crisis_asked)
        try:
            return self.crisis.result(timeout=max(0.0, left))
        except FutureTimeout:
            self.crisis.cancel()
            self.fallback = "crisis_timeout"
        except ProviderError as e:
            self.fallback = f"crisis_{e.code}"
        FALLBACKS.labels(self.fallback).inc()
        log.warning("Groq gave no crisis reply in time (%s): the fixed crisis reply answers", self.fallback)
        return None

    def _fixed(self, status: str = "ok") -> dict:
        """Store the fixed crisis reply and answer with it."""
        completion = Completion(text=texts.crisis_reply(self.resources_text, self.lang), model="safety",
                                latency_ms=0, source="safety", fallback=self.fallback)
        return self._answer(completion, self._store(completion), status)

    def _withhold(self, completion: Completion) -> dict:
        """Keep an unsafe reply for review only (never shown, never trained on); the fixed crisis reply instead."""
        self._store(completion, "blocked")
        log.warning("Model reply withheld by the safety layer: source=%s model=%s", completion.source, completion.model)
        return self._fixed(status="blocked")

    def _note(self) -> str:
        """What follows a model's reply on a risky turn: the lines (for a clinician's patient when high)."""
        if self.risk_level == HIGH:
            return "" if self.turn.role == "patient" else texts.clinician_note(self.resources_text)
        return texts.resources_note(self.resources_text, self.lang) if self.risk_level == MEDIUM else ""

    def _store(self, completion: Completion, status: str = "ok", error: str | None = None) -> int:
        """Store the reply, log one line about it (never its text) and wake what waits for replies."""
        message_id = self.turns.conversations.store_reply(
            self.turn.session_id, self.risk_level, content=completion.text, source=completion.source,
            model=completion.model, status=status, error=error, latency_ms=completion.latency_ms,
            prompt_tokens=completion.prompt_tokens, completion_tokens=completion.completion_tokens,
            finish_reason=completion.finish_reason, fallback=completion.fallback,
        )
        log.info(
            "Chat reply stored: message=%s source=%s status=%s risk=%s layer=%s latency_ms=%s tokens=%s/%s "
            "fallback=%s", message_id, completion.source, status, self.risk_level, self.layer,
            completion.latency_ms, completion.prompt_tokens, completion.completion_tokens, completion.fallback,
        )
        self.turns.training.notify()
        if self.turn.remembered:
            self.turns.memory.notify()
        return message_id

    def _answer(self, completion: Completion, message_id: int, status: str = "ok") -> dict:
        """The fields every successful reply carries; the crisis lines on a risky turn. The turn is counted."""
        self._count(completion.source, status)
        answer = {
            "reply": completion.text, "session_id": self.turn.session_id, "message_id": message_id,
            "source": completion.source, "model": completion.model, "risk_level": self.risk_level,
            "fallback": completion.fallback, "status": status, "memory_id": self.turn.memory_id,
        }
        if self.risk_level != NONE:
            answer["resources"] = self.turns.resources.for_language(self.lang)
        return answer

    def _shadow(self, completion: Completion, message_id: int, messages: list[dict]) -> None:
        """Offer a turn Groq answered, with no risk screened, to shadow traffic: after the user has the reply."""
        if completion.source == "groq" and self.risk_level == NONE:
            self.turns.shadow.offer(self.turn, message_id, messages, completion.text)

    def _count(self, source: str, status: str) -> None:
        """One turn ended, answered by ``source`` with the status the client saw (ok, blocked, error, truncated)."""
        CHAT_TURNS.labels(source, self.risk_level, status, self.streamed).inc()

    def _failed(self, error: ProviderError, provider) -> TurnFailed:
        """Store the failed reply; what the client is told, with the turn's ids."""
        self._count(provider.source, "error")
        message_id = self._store(Completion(text="", model=provider.model, source=provider.source), "error", error.code)
        return TurnFailed(error, self.turn.session_id, message_id)

    def _first(self) -> Iterator[dict]:
        """A risky turn's first event: the crisis lines, before any reply text."""
        if self.risk_level != NONE:
            yield {"resources": self.turns.resources.for_language(self.lang), "risk_level": self.risk_level}

    def _crisis_events(self) -> Iterator[dict]:
        """The lines at once, then the crisis reply whole: it is screened before any of it is shown."""
        try:
            yield from self._first()
        finally:
            answer = self._crisis_answer()  # stored even when the client has left
        yield {"delta": answer["reply"]}
        yield {"done": True, **answer}

    def _model_events(self, upstream, messages: list[dict]) -> Iterator[dict]:
        """Relay the reply a screened sentence at a time; whatever was generated is stored, even if the client
        leaves."""
        gate = self.turns.screener.gate()
        status, error, lost = "truncated", None, None  # stays truncated if the client disconnects mid-stream
        try:
            yield from self._first()
            for delta in upstream:
                # {} while the gate holds the text: the web layer writes a comment, so that a client that left
                # is noticed at the next token (and its place in the local batch freed), not at the reply's end
                yield {"delta": shown} if (shown := gate.feed(delta)) else {}
                if gate.blocked:
                    break
            if shown := gate.finish():
                yield {"delta": shown}
            if not gate.blocked and (note := self._note()):
                upstream.completion.text += note
                yield {"delta": note}
            status = "blocked" if gate.blocked else "ok"
        except ProviderError as e:
            status, error = "error", e
        finally:
            upstream.close()
            if status in ("error", "truncated"):  # no answer follows: the turn ends here
                self._count(upstream.completion.source, status)
            try:
                message_id = self._store(upstream.completion, status, error and error.code)
            except SessionErased:  # erased by its owner while the reply was being made
                message_id = None
            except (OperationalError, InterfaceError) as e:
                message_id, lost = None, e
        if lost is not None:
            yield {"error": database_unavailable(lost, self.risk_level, self.resources_text,
                                                 session_id=self.turn.session_id, message_id=self.turn.message_id)}
        elif message_id is None:
            yield {"error": {"code": "session_deleted", "message": ERASED_WHILE_ANSWERING}}
        elif error is not None:
            yield {"error": {"code": error.code, "message": error.message, "session_id": self.turn.session_id,
                             "message_id": message_id}}
        elif gate.blocked:
            yield from self._withheld_events(bool(gate.shown))
        else:
            yield {"done": True, **self._answer(upstream.completion, message_id)}
            self._shadow(upstream.completion, message_id, messages)

    def _withheld_events(self, retract: bool) -> Iterator[dict]:
        """The fixed crisis reply in place of a withheld one; the client first drops the screened text it showed."""
        log.warning("Streamed model reply withheld by the safety layer")
        answer = self._fixed(status="blocked")
        if retract:
            yield {"retract": True}
        yield {"delta": answer["reply"]}
        yield {"done": True, **answer}


def database_unavailable(error: Exception, risk_level: str, resources: str, **ids) -> dict:
    """The error a client gets when the database cannot be reached or written: the turn's ids once it has
    them, and the crisis lines for a message screened as risky, whatever the database does."""
    log.error("Database unavailable: %s", type(getattr(error, "orig", None) or error).__name__)
    message = ("Your message was saved, but the reply could not be. " if ids.get("message_id") else
               "Your message could not be saved just now. ") + "Please try again in a moment."
    if risk_level != NONE:
        message += texts.resources_note(resources)
    return {"code": "database_unavailable", "message": message, **ids}
