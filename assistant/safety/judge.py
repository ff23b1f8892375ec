"""A second opinion on risky messages from a safety model on Groq, following a written policy.

Only messages the local screen puts at medium or high are judged, concurrently with the reply's own
call. The judge may lower or raise the level; when it times out, fails or answers something that does
not parse, the local verdict stands (fail safe). Its accuracy cannot be measured offline.
"""

from __future__ import annotations

import json
import logging
import re
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextvars import copy_context
from pathlib import Path

from assistant.completion import ProviderError
from assistant.safety.patterns import HIGH, MEDIUM, NONE

log = logging.getLogger(__name__)

POLICY = (Path(__file__).with_name("judge_policy.md")).read_text(encoding="utf-8")
JUDGE_MAX_TOKENS = 512  # reasoning included; an answer cut short gives no verdict, and the local one stands
JUDGE_THREADS = 16  # concurrent verdicts per worker; a risky message is a small share of turns
_LEVEL = re.compile(r'"level"\s*:\s*"(none|medium|high)"', re.IGNORECASE)


class Judge:
    """Asks SAFETY_JUDGE_MODEL for a level; ``provider`` None turns it off."""

    def __init__(self, provider, timeout: float):
        self.provider, self.timeout = provider, timeout
        self._pool = ThreadPoolExecutor(JUDGE_THREADS, thread_name_prefix="safety-judge") if provider else None

    @classmethod
    def from_settings(cls, settings, groq) -> "Judge":
        """The judge on Groq's client, or none when SAFETY_JUDGE_MODEL is empty or Groq has no key."""
        model = settings.safety_judge_model
        if not model or not groq.configured:
            return cls(None, settings.safety_judge_timeout)
        extra = {"reasoning_effort": "low"} if "gpt-oss" in model else {}
        return cls(groq.variant(model, settings.safety_judge_timeout, JUDGE_MAX_TOKENS, **extra),
                   settings.safety_judge_timeout)

    def ask(self, text: str, context: list[str]) -> "Verdict | None":
        """Start judging a message now (read the verdict later with ``Verdict.level``); None when the judge is off."""
        if self._pool is None:
            return None
        # copy_context: the judge's log lines carry the request's id
        return Verdict(self._pool.submit(copy_context().run, self._judge, text, context), self.timeout)

    def _judge(self, text: str, context: list[str]) -> str | None:
        """The judge's level, or None when it failed or said something else."""
        earlier = "\n".join(f"- {m}" for m in context) or "(none)"
        messages = [{"role": "system", "content": POLICY},
                    {"role": "user", "content": f"Earlier messages:\n{earlier}\n\nLatest message:\n{text}"}]
        try:
            answer = self.provider.complete(messages).text
        except ProviderError as e:
            log.warning("The safety judge did not answer (%s); the local screen's verdict stands", e.code)
            return None
        return parse_level(answer)

    def close(self) -> None:
        """Stop taking verdicts."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


def parse_level(answer: str) -> str | None:
    """The level a judge's answer names: a JSON object with "level", or the bare word; None otherwise."""
    try:
        level = json.loads(answer).get("level")
        if level in (NONE, MEDIUM, HIGH):
            return level
    except (ValueError, AttributeError):
        pass
    found = {level.lower() for level in _LEVEL.findall(answer)}
    bare = answer.strip().strip(".").lower()
    if len(found) == 1 or bare in (NONE, MEDIUM, HIGH):
        return found.pop() if found else bare
    log.warning("The safety judge's answer did not name one level; the local screen's verdict stands")
    return None


class Verdict:
    """A verdict being made; ``level()`` waits for it until the judge's deadline, counted from the ask."""

    def __init__(self, future: Future, timeout: float):
        self.future, self.timeout = future, timeout
        self._started = time.monotonic()

    def level(self) -> str | None:
        """The judge's level, or None when it is late, failed or unreadable."""
        try:
            return self.future.result(timeout=max(0.0, self.timeout - (time.monotonic() - self._started)))
        except FutureTimeout:
            self.future.cancel()
            log.warning("The safety judge took longer than %.1f s; the local screen's verdict stands", self.timeout)
            return None
        except Exception:  # the judge is a second opinion: its failure must never fail the turn
            log.exception("The safety judge failed; the local screen's verdict stands")
            return None


