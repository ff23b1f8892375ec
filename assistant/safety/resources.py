"""Crisis lines per language: what every medium- or high-risk answer carries, whatever the model does.

Each line says whom to reach, the contact, and how. The built-in lines are the US ones (988 has a
Spanish line); CRISIS_RESOURCES replaces them with one line of the operator's, in every language.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

LANGUAGES = ("en", "es")


@dataclass(frozen=True)
class Line:
    """One way to reach help now."""

    name: str
    contact: str
    how: str  # a sentence the person can act on


BUILT_IN = {
    "en": (
        Line("988 Suicide & Crisis Lifeline", "988", "Call or text 988, any time, if you are in the US."),
        Line("Crisis Text Line", "741741", "Text HOME to 741741."),
        Line("Emergency services", "911", "Call 911 if you or someone else is in immediate danger."),
        Line("988 en español", "988", "En español: llama al 988 y marca 2, o envía AYUDA por mensaje de texto al 988."),
    ),
    "es": (
        Line("Línea 988 de Prevención del Suicidio y Crisis", "988",
             "Llama al 988 y marca 2 para hablar en español, o envía AYUDA por mensaje de texto al 988, a cualquier hora."),
        Line("Emergencias", "911", "Llama al 911 si tú u otra persona están en peligro inmediato."),
    ),
}

# Words far more common in one language than the other; a message is Spanish when it has more of its words.
_MARKERS = {
    "es": set("que no yo me mi mis estoy estar es soy tengo quiero puedo para pero porque muy más ya nada todo "
              "hoy vida nadie cuando como con los las una del por sin también aquí eso esto".split()),
    "en": set("the i i'm to and my is it you me of a in that this have don't just what can't want feel am be "
              "with so but not it's at for do".split()),
}


def language(*texts: str) -> str:
    """The conversation's language from what the user wrote: "es" or "en" (the default)."""
    words = re.findall(r"[\w']+", " ".join(texts).lower())
    spanish = sum(w in _MARKERS["es"] for w in words) + 2 * len(re.findall(r"[ñ¿¡]", " ".join(texts)))
    english = sum(w in _MARKERS["en"] for w in words)
    return "es" if spanish > english else "en"


class CrisisResources:
    """The lines for each language, as data for the answer and as text for the replies."""

    def __init__(self, override: str | None = None):
        lines = {lang: (Line("Crisis support", "", override),) for lang in LANGUAGES} if override else BUILT_IN
        self.lines = lines

    def for_language(self, lang: str) -> list[dict]:
        """The lines as the answer's `resources` field."""
        return [asdict(line) for line in self.lines.get(lang, self.lines["en"])]

    def text(self, lang: str) -> str:
        """The lines as sentences, for the crisis reply and the notes."""
        return " ".join(line.how for line in self.lines.get(lang, self.lines["en"]))
