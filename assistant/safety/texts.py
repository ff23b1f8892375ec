"""What the safety layer says: the crisis reply, and the notes appended to model replies."""

from __future__ import annotations

def crisis_reply(resources: str) -> str:
    """The immediate answer to a high-risk message, and what replaces a withheld reply."""
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


def clinician_note(resources: str) -> str:
    """What is appended to a model's reply when a clinician describes a patient at risk."""
    return ("\n\nIf your patient is at imminent risk, follow your service's emergency protocol. "
            f"Resources you can share with them: {resources}")
