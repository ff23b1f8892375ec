"""What the blueprints share: settings, the repository, the assistant and the scheduler, bound to the app."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app

from assistant.router import Router
from config import Settings
from storage.repo import Repo
from trainer.scheduler import Scheduler

KEY = "therapistai"


@dataclass(frozen=True)
class Services:
    settings: Settings
    repo: Repo
    assistant: Router
    scheduler: Scheduler

    def close(self) -> None:
        """Stop the background threads and close the database pool."""
        self.scheduler.stop()
        if self.assistant.local is not None:
            self.assistant.local.close()
        self.repo.engine.dispose()


def init_app(app: Flask, services: Services) -> None:
    """Bind the services to one app."""
    app.extensions[KEY] = services


def services() -> Services:
    """The services of the app handling this request."""
    return current_app.extensions[KEY]
