"""What the safety layer says: the fixed crisis reply, and the notes appended to model replies."""

from __future__ import annotations

CRISIS_REPLY = {
    "en": ("I'm really glad you told me, and I'm concerned about your safety right now. "
           "You deserve support from a person who can help immediately. {resources} "
           "If you can, reach out to someone you trust and stay with them. "
           "I'm an AI and can't call for help, but I'm here to keep talking with you."),
    "es": ("Me alegra mucho que me lo hayas contado, y me preocupa tu seguridad en este momento. "
           "Mereces el apoyo de una persona que pueda ayudarte ahora mismo. {resources} "
           "Si puedes, busca a alguien de confianza y quédate con esa persona. "
           "Soy una IA y no puedo pedir ayuda por ti, pero sigo aquí para hablar contigo."),
}
RESOURCES_NOTE = {
    "en": "\n\nIf you're having thoughts of harming yourself, support is available right now. {resources}",
    "es": "\n\nSi estás pensando en hacerte daño, hay apoyo disponible ahora mismo. {resources}",
}


def crisis_reply(resources: str, lang: str = "en") -> str:
    """The fixed answer to a high-risk message when Groq cannot give one, and what replaces a withheld reply."""
    return CRISIS_REPLY.get(lang, CRISIS_REPLY["en"]).format(resources=resources)


def resources_note(resources: str, lang: str = "en") -> str:
    """What is appended to a model's reply to a medium-risk message."""
    return RESOURCES_NOTE.get(lang, RESOURCES_NOTE["en"]).format(resources=resources)


def clinician_note(resources: str) -> str:
    """What is appended to a model's reply when a clinician describes a patient at risk."""
    return ("\n\nIf your patient is at imminent risk, follow your service's emergency protocol. "
            f"Resources you can share with them: {resources}")
