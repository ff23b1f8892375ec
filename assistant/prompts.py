"""System prompts per role, and the message list a model is given."""

from __future__ import annotations

from typing import Iterable

ROLES = ("patient", "clinician")

SYSTEM_PROMPTS = {
    "patient": (
        "You are TherapistAI, a warm and supportive AI companion for people looking after their "
        "mental health. Listen carefully, reflect what you hear, and respond with empathy in plain "
        "language. Offer general coping ideas, never a diagnosis or medication advice. You are an "
        "AI, not a therapist: encourage the person to seek help from a qualified professional "
        "when things are hard, and to contact emergency services if they are in danger."
    ),
    "clinician": (
        "You are TherapistAI, a concise assistant for mental-health clinicians. Answer in a "
        "professional clinical tone: structured, evidence-informed and brief. Name uncertainty "
        "and point to guidelines or assessment tools where relevant. You support the clinician's "
        "judgement; you do not replace it and you do not make diagnoses."
    ),
}


def system_prompt(role: str) -> str:
    """The system prompt for a conversation's role."""
    return SYSTEM_PROMPTS[role]


def build_messages(role: str, history: Iterable[tuple[str, str]], user_message: str,
                   memory: str | None = None) -> list[dict]:
    """System prompt (with recalled earlier conversations, if any), prior (author, text) turns oldest first,
    then the new user message."""
    system = system_prompt(role) if memory is None else f"{system_prompt(role)}\n\n{memory}"
    messages = [{"role": "system", "content": system}]
    messages += [{"role": author, "content": text} for author, text in history]
    messages.append({"role": "user", "content": user_message})
    return messages
