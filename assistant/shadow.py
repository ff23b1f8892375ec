"""Shadow traffic: some of the turns Groq answers are answered again by the active local version.

After the user already has Groq's reply, a sampled turn (SHADOW_SAMPLE_RATE, from conversations
with training consent and no risk screened) is given to the active version in a background
thread; its reply is never shown and never a training example, only kept beside Groq's, with
their similarity and the reply screening's verdict, for admins judging a switch to USE_LOCAL_AI.
Shadow replies are background rows of the local model's batch: they start only when the batch has room
and no user's reply waits, give their place up to a user's reply, and a turn sampled when they cannot start
at once is dropped, so shadowing never queues work behind itself.
"""

from __future__ import annotations

import logging
import random
import threading

from assistant.completion import ProviderError
from assistant.reply_quality import degenerate, similarities
from storage.conversations import Turn
from storage.shadow import ShadowReplies

log = logging.getLogger(__name__)


class Shadow:
    """Offers turns to the local model in the background; ``local`` None turns it off."""

    def __init__(self, local, rate: float, screener, embedder, store: ShadowReplies):
        self.local, self.rate = local, rate
        self.screener, self.embedder, self.store = screener, embedder, store

    def offer(self, turn: Turn, reply_id: int, messages: list[dict], groq: str) -> bool:
        """Maybe answer this turn again in the background; True when a shadow reply was asked for (it is dropped
        when it cannot start at once)."""
        if self.local is None or not turn.consent or random.random() >= self.rate:
            return False
        threading.Thread(target=self._answer, args=(turn, reply_id, messages, groq), name="shadow-reply",
                         daemon=True).start()
        return True

    def close(self) -> None:
        """Stop the local model this shadow runs."""
        if self.local is not None:
            self.local.close()

    def _answer(self, turn: Turn, reply_id: int, messages: list[dict], groq: str) -> None:
        """Runs on its own thread: the local reply, read and kept; any failure only costs this shadow reply."""
        try:
            completion = self.local.complete(messages, background=True)
            text = completion.text
            (similarity,) = similarities(self.embedder, [text], [groq])
            self.store.add(reply_id, turn.message_id, turn.session_id, version=completion.model, content=text,
                           similarity=similarity, unsafe=self.screener.unsafe(text),
                           degenerate=degenerate(text, completion.finish_reason == "stop"),
                           latency_ms=completion.latency_ms)
        except ProviderError as e:
            log.info("Shadow reply dropped: %s", e.code)
        except Exception as e:
            log.error("Shadow reply failed: %s", type(e).__name__)


READY_COUNT = 20  # shadow replies read before a verdict means anything
READY_DEGENERATE = 0.1  # at most this share of them empty, looping or cut off


def readiness(report: dict) -> dict:
    """Whether the shadow replies say the active version is ready to answer users, with every reason."""
    count, reasons, ready = report["count"], [], True
    if count < READY_COUNT:
        ready = False
        reasons.append(f"only {count} shadow replies so far; {READY_COUNT} are needed to judge")
    if report["unsafe"]:
        ready = False
        reasons.append(f"{report['unsafe']} shadow replies would have been withheld as unsafe")
    if count and report["degenerate"] > READY_DEGENERATE * count:
        ready = False
        reasons.append(f"{report['degenerate']} of {count} shadow replies were empty, looping or cut off "
                       f"(at most {READY_DEGENERATE:.0%})")
    if ready:
        reasons.append(f"{count} shadow replies, none unsafe, {report['degenerate']} degenerate; mean similarity "
                       f"to Groq's replies {report['similarity_mean']}")
    return {"ready": ready, "reasons": reasons}
