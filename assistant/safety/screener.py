"""Screening what users say and what models say: the patterns always, the semantic layer when it loaded.

A user message is screened alone and, when the session has earlier messages, together
with them: "tonight's the night" is calm alone and a plan after "I've been saving my
pills". Read together, messages raise the level to high only when the earlier ones carried risk
(otherwise to medium: resources and the judge's second opinion), and a vague message high alone but calm
with what came before ("I can't do this anymore" after a spreadsheet) is medium. After a crisis
turn, a message that calms ("thank you, I'll call them now") is medium and one that goes on ("the
train is in five minutes") stays high. A model reply is screened at sentence ends, each new piece
with the WINDOW_WORDS before it, so a stream can release text as soon as it is screened and no unsafe
sentence ever leaves the server; a whole reply goes through the same gate, fed at once.
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assistant.safety import labelled, patterns
from assistant.safety.patterns import HIGH, MEDIUM, NONE
from assistant.safety.semantic import LinearClassifier
from embeddings.model import shared_embedder
from telemetry.metrics import SCREENING_DURATION, SCREENING_VERDICTS

log = logging.getLogger(__name__)

LEVELS = (NONE, MEDIUM, HIGH)
# Chosen on the dev split (bench/safety_eval.py --tune), leaning to recall: a missed crisis costs more than a
# needless crisis reply. Measured again on dev after the ordinary rows were added (147 high-risk, 31 passive,
# 366 hard negatives and ordinary messages, 220 replies): high at 0.2, recall 0.97 with 18% of negatives
# screened high (0.25: 0.96 and 14%; 0.3: 0.92 and 13%). Medium at 0.4: passive recall 0.94 (0.45: 0.87).
# Replies at 0.4: 0.91 of unsafe ones withheld and 2% of safe ones (0.3: 0.93 and 3%; 0.2: 0.96 and 8%).
# After a crisis turn, calming at 0.5: 9% of messages that go on are lowered to
# medium at any threshold up to 0.8, and 25% of calming ones keep the crisis reply (0.3: 4%; 0.7: 46%).
# Test figures: docs/SAFETY.md.
HIGH_AT = 0.2  # P(high) from which a message is high risk
MEDIUM_AT = 0.4  # P(high) + P(medium) from which it is at least medium
UNSAFE_AT = 0.4  # P(unsafe) of a reply so far from which it is withheld
CALMS_AT = 0.5  # P(calms) from which a message after a crisis turn is medium, not high
# Shorter texts are left to the patterns: on a fragment ("turn 3", "ok", "I feel sad") the classifier has
# nothing to go on. Chosen on dev: 4 words lose no high-risk recall on dev (0.952) and screen fewer negatives
# high than 3 (0.167 against 0.169); with 3, three-word feelings were read as passive ideation.
MIN_WORDS = 4
REPLY_MIN_WORDS = 8  # for a whole reply: the shortest labelled reply has 9 words
PREFIX_MIN_WORDS = 15  # a stream holds text until then: on shorter prefixes the classifier misfired on dev
# A reply is screened in pieces of whole sentences, each read with the words before it, not as the whole
# reply so far again at every sentence end: that cost grew with the square of the reply's sentences, and
# the embedding model reads only its first 256 word pieces, so an unsafe end of a long reply went unread.
# The labelled replies (at most 79 words) mostly fit in one window; bench/safety_eval.py also reports
# unsafe replies after a long safe preamble.
WINDOW_WORDS = 50  # the text before a new piece that is screened with it
PIECE_WORDS = 60  # a release longer than this is screened in pieces of whole sentences of about this length
SENTENCE_END = re.compile(r"(?<=[.!?…])[\"')\]]*\s+|\n+")
MESSAGE_SCREENING, REPLY_SCREENING = SCREENING_DURATION.labels("message"), SCREENING_DURATION.labels("reply")


def levels(probabilities: np.ndarray, high_at: float | None = None, medium_at: float | None = None) -> np.ndarray:
    """Each row of (none, medium, high) probabilities as an index into LEVELS (at HIGH_AT and MEDIUM_AT unless
    given: read at each call, so bench/safety_eval.py --curve can move them)."""
    high_at = HIGH_AT if high_at is None else high_at
    medium_at = MEDIUM_AT if medium_at is None else medium_at
    return np.where(probabilities[:, 2] >= high_at, 2,
                    np.where(probabilities[:, 1] + probabilities[:, 2] >= medium_at, 1, 0))


@dataclass(frozen=True)
class Screening:
    """The verdict on one user message, and the layer that set it."""

    risk_level: str  # none | medium | high
    layer: str | None = None  # patterns | semantic | context; None when nothing was found

    @property
    def is_crisis(self) -> bool:
        """High risk: a patient gets crisis resources at once, not a model reply."""
        return self.risk_level == HIGH


class Screener:
    """The safety layers of this process."""

    def __init__(self, messages: LinearClassifier | None = None, replies: LinearClassifier | None = None,
                 after_crisis: LinearClassifier | None = None, semantic_error: str | None = None):
        self.messages, self.replies, self.after_crisis = messages, replies, after_crisis
        self.semantic_error = semantic_error

    @classmethod
    def load(cls, embeddings_dir: str) -> "Screener":
        """Patterns and, when the embedding model loads, the semantic layer; says loudly when it does not."""
        embedder, error = shared_embedder(embeddings_dir)
        if embedder is None:
            log.error("SAFETY SCREENING RUNS ON PATTERNS ONLY: the sentence-embedding model did not load (%s). "
                      "Messages that do not use explicit wording will not be caught.", error)
            return cls(semantic_error=error)
        train, cache = labelled.load("messages", "train"), Path(embeddings_dir)
        # A calming message after a crisis turn is medium, but read with that turn it looks like the crisis:
        # the after-crisis classifier judges those, and the level classifier does not learn from them.
        messages = LinearClassifier(embedder, [r for r in train if r.category != labelled.CALMING], LEVELS, cache)
        replies = LinearClassifier(embedder, labelled.load("replies", "train"), ("safe", "unsafe"), cache)
        after_crisis = LinearClassifier(embedder, labelled.after_crisis(train), labelled.AFTER_CRISIS, cache)
        log.info("Safety screening: patterns and semantic layer (fitted on %d messages and %d replies)",
                 messages.size, replies.size)
        return cls(messages, replies, after_crisis)

    def status(self) -> dict:
        """Which layers run, for /api/stats."""
        return {"layers": ["patterns", "semantic"] if self.messages else ["patterns"],
                "semantic_error": self.semantic_error}

    def screen(self, text: str, context: list[str] | tuple[str, ...] = ()) -> Screening:
        """The risk of a user message, given the same user's earlier messages (oldest first); timed and counted."""
        with MESSAGE_SCREENING.time():
            found = self._screen(text, context)
        SCREENING_VERDICTS.labels(found.risk_level, found.layer or "none").inc()
        return found

    def _screen(self, text: str, context: list[str] | tuple[str, ...]) -> Screening:
        """The risk of a user message, given the same user's earlier messages."""
        found = Screening(patterns.risk_level(text), "patterns")
        if self.messages is None or found.risk_level == HIGH:
            return found if found.risk_level != NONE else Screening(NONE)
        together = labelled.with_context(context, text) if context else ""
        alone, together_level = self._semantic_levels(
            [t if len(t.split()) >= MIN_WORDS else None for t in (text, together)])
        earlier = labelled.with_context(context[:-1], context[-1]) if context else ""

        @functools.cache
        def earlier_level() -> str:
            """The earlier messages' own level: read only when a verdict depends on it (a second embedding)."""
            return max(patterns.risk_level(earlier), self._semantic_levels([earlier])[0], key=LEVELS.index)

        if alone is not None and LEVELS.index(alone) > LEVELS.index(found.risk_level):
            found = Screening(alone, "semantic")
        if together_level == HIGH and found.risk_level != HIGH:
            # Two messages calm alone do not make a crisis together unless the earlier ones carried risk; read
            # together they still earn the lines and the judge's second opinion ("I went to the pharmacy twice
            # today", then "I think that is enough now").
            if earlier_level() != NONE:
                found = Screening(HIGH, "context")
            elif found.risk_level == NONE:
                found = Screening(MEDIUM, "context")
        elif together_level == NONE and found == Screening(HIGH, "semantic"):
            found = Screening(MEDIUM, "context")  # a vague follow-up that reads calm with what came before it
        if found.risk_level == HIGH and context and earlier_level() == HIGH and self._calms_after_crisis(text):
            found = Screening(MEDIUM, "context")
        return found if found.risk_level != NONE else Screening(NONE)

    def _calms_after_crisis(self, text: str) -> bool:
        """Whether a message after a crisis turn (the earlier messages alone were high) calms.

        After a crisis turn, which already got the crisis reply, the earlier messages dominate the
        context's embedding whatever follows, and a calming message often names the means it puts away
        ("I gave the pills to my flatmate"). So the new message alone decides: one that calms ("thank
        you, I'll call them now") reaches the model as medium, with resources in view; one that goes on
        ("turning my phone off now") gets the crisis reply again. Explicit wording (the patterns) always
        stays high.
        """
        try:
            return bool(self.after_crisis.probabilities([text])[0][1] >= CALMS_AT)
        except Exception:
            log.exception("The semantic safety layer failed on a message after a crisis turn; it stays high")
            return False

    def gate(self) -> "ReplyGate":
        """A gate for one reply: feed it text, get back what may be shown."""
        return ReplyGate(self)

    def unsafe(self, reply: str) -> bool:
        """Whether a whole reply must be withheld, by the gate a stream goes through, fed at once.

        A stream is judged at more prefixes than a whole reply, so it can only be withheld more often.
        """
        gate = self.gate()
        gate.feed(reply)
        gate.finish()
        return gate.blocked

    def unsafe_windows(self, windows: list[str], ended: bool) -> bool:
        """Whether any window of a reply (new text with the words before it) is unsafe by the patterns or, when
        loaded, the semantic layer, in one call; ``ended``: the last window reaches the reply's end."""
        with REPLY_SCREENING.time():
            return self._unsafe_windows(windows, ended)

    def _unsafe_windows(self, windows: list[str], ended: bool) -> bool:
        """unsafe_windows, untimed."""
        if any(patterns.unsafe_reply(w) for w in windows):
            return True
        least = REPLY_MIN_WORDS if ended else PREFIX_MIN_WORDS
        long_enough = [w for w in windows if len(w.split()) >= least]
        return self.replies is not None and bool(long_enough) and self._semantic_unsafe(long_enough)

    def _semantic_levels(self, texts: list[str | None]) -> list[str | None]:
        """The semantic layer's level per text, in one call (None for a None text); NONE for all when it fails
        (the patterns still stand)."""
        given = [t for t in texts if t is not None]
        try:
            found = iter(LEVELS[i] for i in levels(self.messages.probabilities(given))) if given else iter(())
        except Exception:
            log.exception("The semantic safety layer failed on a message; the patterns' verdict stands")
            found = iter([NONE] * len(given))
        return [None if t is None else next(found) for t in texts]

    def _semantic_unsafe(self, windows: list[str]) -> bool:
        """The semantic verdict on a reply's windows; a failure withholds nothing the patterns passed."""
        try:
            return bool((self.replies.probabilities(windows)[:, 1] >= UNSAFE_AT).any())
        except Exception:
            log.exception("The semantic safety layer failed on a reply; the patterns' verdict stands")
            return False


@functools.lru_cache(maxsize=4)
def shared_screener(embeddings_dir: str) -> Screener:
    """One screener per process and model folder: it is read-only, and loading it takes a second."""
    return Screener.load(embeddings_dir)


class ReplyGate:
    """Holds a reply's text until its sentences are screened; once it is unsafe, releases nothing more."""

    def __init__(self, screener: Screener):
        self.screener = screener
        self.pending, self.shown = "", ""
        self.blocked = False

    def feed(self, delta: str) -> str:
        """Add model text; what may be shown now: complete sentences, screened with everything before them."""
        if self.blocked:
            return ""
        self.pending += delta
        ends = list(SENTENCE_END.finditer(self.pending))
        if not ends:
            return ""
        ready = self.pending[:ends[-1].end()]
        if len((self.shown + ready).split()) < PREFIX_MIN_WORDS:
            return ""  # too little to judge yet: hold it
        self.pending = self.pending[len(ready):]
        return self._screened(ready, ended=False)

    def finish(self) -> str:
        """The reply ended: screen and release the rest."""
        if self.blocked or not self.pending:
            return ""
        rest, self.pending = self.pending, ""
        return self._screened(rest, ended=True)

    def _screened(self, text: str, ended: bool) -> str:
        """The text if each of its pieces, read with the words before it, is safe; otherwise block the reply."""
        windows, before = [], self.shown
        for piece in _pieces(text):
            windows.append(" ".join(before.split()[-WINDOW_WORDS:] + [piece]))
            before += piece
        if windows and self.screener.unsafe_windows(windows, ended):
            self.blocked = True
            return ""
        self.shown += text
        return text


def _pieces(text: str) -> list[str]:
    """The text's sentences, joined into pieces of about PIECE_WORDS words (a longer sentence is a piece alone)."""
    pieces, current = [], ""
    for sentence in filter(str.strip, SENTENCE_END.split(text)):
        if current and len((current + " " + sentence).split()) > PIECE_WORDS:
            pieces.append(current)
            current = ""
        current = f"{current} {sentence}".strip()
    return pieces + [current] if current else pieces
