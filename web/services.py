"""What the blueprints share: settings, the repository and the assistant, bound to the app."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app

from assistant.groq_provider import GroqProvider
from config import Settings
from storage.repo import Repo

KEY = "therapistai"


@dataclass(frozen=True)
class Services:
    settings: Settings
    repo: Repo
    assistant: GroqProvider


def init_app(app: Flask, services: Services) -> None:
    """Bind the services to one app."""
    app.extensions[KEY] = services


def services() -> Services:
    """The services of the app handling this request."""
    return current_app.extensions[KEY]
