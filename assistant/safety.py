"""Crisis screening: every user message is checked before any model sees it.

Patterns run on a normalised form of the text (lower case, accents and
look-alike digits folded, punctuation dropped, spaced-out letters joined), so
"K.I.L.L  my-self" reads like "kill my self". They are a safety net, not a
clinical assessment: high risk answers at once with crisis resources, medium
risk lets the model answer and appends them.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

HIGH, MEDIUM, NONE = "high", "medium", "none"

_LOOKALIKES = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "@": "a", "$": "s"})
_SELF = r"(?:myself|my self)"
_OTHERS = r"(?:him|her|them|someone|somebody|people|everyone|everybody|my (?:\w+ ){0,2}?(?:wife|husband|boss|mom|mother|dad|father|partner|boyfriend|girlfriend|kids?|children|family|brother|sister|roommate|neighbou?r|coworkers?|teacher|ex))"
_INTENT = r"(?:(?:want|wanna|going|gonna|plan|planning|intend|intending|ready|about|decided|need|have)(?: to)?|will|ill|i will)"
# "going to die of embarrassment" is a figure of speech, "going to die" is not.
_NOT_FIGURATIVE = r"(?! (?:of|from|laughing|when|if|someday|one day|eventually))"

_HIGH_PATTERNS = [
    rf"\bkill(?:ing)? ?{_SELF}\b",
    r"\bsuicide\b.*\b(?:tonight|today|plan|note|method)\b",
    r"\b(?:commit|committing|attempt|attempting) suicide\b",
    r"\bend(?:ing)? (?:my|my own) life\b",
    r"\btake (?:my|my own) life\b(?! back)",
    r"\bend it all\b",
    rf"\b(?:want|wanna|going|gonna|ready|deserve) (?:to )?die\b{_NOT_FIGURATIVE}",
    r"\bdont want to (?:live|be alive)\b",
    rf"\bunalive {_SELF}\b",
    rf"\b(?:hang|shoot|drown|poison|stab) {_SELF}\b",
    r"\b(?:overdose|od) (?:on|tonight|today)\b",
    r"\b(?:take|swallow|taking|swallowing) (?:all|a bunch|the whole bottle) of (?:my |the |these |those )?(?:pills|meds|medication|tablets)\b",
    r"\b(?:slit|cut|slash)(?:ting)? my (?:wrists?|throat)\b",
    r"\bjump (?:off|from|in front of) (?:a|the|this) (?:bridge|building|roof|train|cliff|balcony)\b",
    r"\b(?:bought|got|have) (?:a )?(?:gun|rope|pills) to (?:kill|end|hurt)\b",
    rf"\b{_INTENT} (?:hurt|harm|cut|burn) {_SELF}\b",
    rf"\b{_INTENT} (?:kill|murder|shoot|stab|hurt|harm|strangle|poison) {_OTHERS}\b",
    r"\b(?:shoot|bomb) up (?:the|my|a) (?:school|office|work|workplace|church|mall)\b",
]

_MEDIUM_PATTERNS = [
    r"\bsuicidal\b",
    r"\b(?:thinking|thoughts?|think|thought) (?:about|of) (?:suicide|killing myself|ending (?:it|my life)|dying)\b",
    r"\bwish (?:i|id) (?:was|were|could be) dead\b",
    r"\bwish i (?:could )?(?:just )?(?:disappear|not wake up|never woke up|wasnt born|was never born)\b",
    r"\bbetter off (?:dead|without me)\b",
    r"\b(?:no|nothing to) (?:reason to )?live for\b",
    r"\bno reason to (?:live|go on|keep going)\b",
    r"\bdont want to (?:be here anymore|wake up)\b",
    r"\bkms\b",
    r"\bcant go on\b",
    r"\bcant (?:do|take) (?:this|it) anymore\b",
    r"\b(?:self harm|selfharm|self injury|self harming)\b",
    rf"\b(?:cutting|burning|hurting|harming|starving) {_SELF}\b",
    rf"\b(?:cut|burned|hurt|harmed) {_SELF} (?:again|last night|yesterday|today)\b",
    r"\b(?:kill|killing|kills) (?:himself|herself|themselves|themself)\b",
    r"\bhopeless\b.*\b(?:die|dead|end|point)\b",
    r"\bwhats the point (?:of living|in living|of anything)\b",
]

_HIGH = [re.compile(p) for p in _HIGH_PATTERNS]
_MEDIUM = [re.compile(p) for p in _MEDIUM_PATTERNS]


@dataclass(frozen=True)
class Screening:
    """The verdict on one message."""

    risk_level: str  # none | medium | high

    @property
    def is_crisis(self) -> bool:
        """High risk: answer with crisis resources, not a model."""
        return self.risk_level == HIGH


def normalise(text: str) -> str:
    """Fold case, accents, look-alike characters, punctuation and spacing away."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    text = re.sub(r"[’'`´]", "", text)  # "don't" -> "dont", "I'll" -> "ill"
    text = text.translate(_LOOKALIKES)
    text = re.sub(r"[^a-z\s]", " ", text)
    # Join before collapsing spaces: wider gaps between spelled-out words keep them apart.
    return re.sub(r"\s+", " ", _join_spelled_out(text)).strip()


def _join_spelled_out(text: str) -> str:
    """Join runs of three or more single letters: "k i l l myself" -> "kill myself"."""
    return re.sub(r"\b(?:[a-z] ){2,}[a-z]\b", lambda m: m.group(0).replace(" ", ""), text)


def screen(text: str) -> Screening:
    """Classify a user message as high, medium or no risk."""
    normalised = normalise(text)
    if any(p.search(normalised) for p in _HIGH):
        return Screening(HIGH)
    if any(p.search(normalised) for p in _MEDIUM):
        return Screening(MEDIUM)
    return Screening(NONE)


def crisis_reply(resources: str) -> str:
    """The immediate answer to a high-risk message."""
    return (
        "I'm really glad you told me, and I'm concerned about your safety right now. "
        "You deserve support from a person who can help immediately. "
        f"{resources} "
        "If you can, reach out to someone you trust and stay with them. "
        "I'm an AI and can't call for help, but I'm here to keep talking with you."
    )


def resources_note(resources: str) -> str:
    """What is appended to a model's reply to a medium-risk message."""
    return f"\n\nIf you're having thoughts of harming yourself, support is available right now. {resources}"
