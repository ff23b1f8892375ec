"""What the blueprints share: settings, the database's queries, the assistant, memory and auto-training, bound to the
app."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app

from assistant.memory import Memory
from assistant.router import Router
from assistant.safety.screener import Screener
from assistant.shadow import Shadow
from assistant.tryout import TryOut
from assistant.turn import Turns
from config import Settings
from jobs.trigger import Trigger
from registry.registry import Registry
from storage.conversations import Conversations
from storage.health import DatabaseHealth
from storage.screenings import Screenings
from storage.stats import Stats

KEY = "therapistai"


@dataclass(frozen=True)
class Services:
    settings: Settings
    conversations: Conversations  # turns stored, history, messages, consent, erasure
    stats: Stats  # message counts for the admin
    database: DatabaseHealth  # .engine, and the health checks' probes
    assistant: Router
    safety: Screener
    registry: Registry  # model versions and the active one
    training: Trigger  # .policy, .supervisor, .notify
    memory: Memory  # recall and the background indexer
    tryout: TryOut  # replies from any version, for admins
    shadow: Shadow  # some of Groq's turns answered again by the active local version, unseen
    turns: Turns  # the chat turn pipeline over the services above
    screenings: Screenings  # what the crisis screen decided, for the admin's safety view

    def close(self) -> None:
        """Stop the background threads and close the database pool."""
        self.turns.close()
        self.training.stop()
        self.memory.close()
        self.tryout.close()
        self.shadow.close()
        if self.assistant.local is not None:
            self.assistant.local.close()
        self.database.engine.dispose()


def init_app(app: Flask, services: Services) -> None:
    """Bind the services to one app."""
    app.extensions[KEY] = services


def services() -> Services:
    """The services of the app handling this request."""
    return current_app.extensions[KEY]
