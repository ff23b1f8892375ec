"""The Flask app: `gunicorn api:app` in production, `python api.py` for development."""

from __future__ import annotations

import logging
from dataclasses import replace

from flask import Flask

from assistant.groq_provider import GroqProvider
from assistant.memory import Memory
from assistant.router import Router
from assistant.safety.judge import Judge
from assistant.safety.screener import shared_screener
from assistant.shadow import Shadow
from assistant.tryout import TryOut
from assistant.turn import Turns
from config import Settings, cli_settings
from embeddings.model import shared_embedder
from jobs.trigger import Trigger
from registry.registry import Registry
from storage.engine import is_persistent, log_startup
from storage.migrate import migrated_engine
from storage.conversations import Conversations
from storage.health import DatabaseHealth
from storage.screenings import Screenings
from storage.shadow import ShadowReplies
from storage.stats import Stats
from telemetry.logs import configure_logging
from web import admin, chat, health, memories, metrics, openapi, pages, sessions, training
from web.errors import register_error_handlers
from web.limits import init_limits
from web.json_provider import JSONProvider
from web.metrics import init_metrics
from web.request_ids import init_request_ids
from web.services import Services, init_app

MAX_BODY_BYTES = 64 * 1024
# The shadow model's torch thread yields the CPU to every request: bench/shadow_latency.py (1 round, 4 clients)
# measured users' p50 at 1.17x without shadow traffic when it ran at normal priority, 1.06x at nice 19.
SHADOW_NICE = 19
log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app: settings, database (migrated), assistant, training trigger, blueprints."""
    settings = settings or Settings.from_env()
    configure_logging(settings.log_level, settings.log_format)
    app = Flask(__name__, static_folder="web/static", template_folder="web/templates")
    app.json = JSONProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    engine = migrated_engine(settings.database_url)
    log_startup(engine, is_persistent(engine, settings.on_railway, settings.is_on_volume), settings.on_railway)
    warn_if_models_ephemeral(settings)
    groq = GroqProvider(settings)
    if not groq.configured:
        log.warning("GROQ_API_KEY is not set: /api/chat will answer 503 unless the local model answers")
    registry = Registry.from_settings(settings, engine)
    local = None
    if settings.use_local_ai:
        from assistant.local_provider import LocalProvider

        local = LocalProvider(registry, settings.local)
    safety = shared_screener(settings.embeddings_dir)
    trigger = Trigger.from_settings(settings, engine)
    if settings.enable_auto_training:
        trigger.start()
    log.info("USE_LOCAL_AI=%d ENABLE_AUTO_TRAINING=%d AUTO_TRAIN_THRESHOLD=%d",
             settings.use_local_ai, settings.enable_auto_training, settings.auto_train_threshold)
    conversations, router, memory = Conversations(engine), Router(groq, local), Memory.from_settings(settings, engine)
    shadow = _shadow(settings, registry, safety, engine)
    turns = Turns(settings, conversations, router, safety, Judge.from_settings(settings, groq), memory, trigger, shadow)
    init_app(app, Services(settings=settings, conversations=conversations, stats=Stats(engine),
                           database=DatabaseHealth(engine), assistant=router, safety=safety, registry=registry,
                           training=trigger, memory=memory, tryout=TryOut(registry, settings.local), shadow=shadow,
                           turns=turns, screenings=Screenings(engine)))
    register_error_handlers(app)
    for blueprint in (pages.bp, chat.bp, sessions.bp, memories.bp, admin.bp, training.bp, health.bp, openapi.bp,
                      metrics.bp):
        app.register_blueprint(blueprint)
    init_request_ids(app)
    init_metrics(app, settings)
    init_limits(app, settings)
    return app


def _shadow(settings: Settings, registry: Registry, safety, engine) -> Shadow:
    """Shadow traffic while Groq answers (with USE_LOCAL_AI=1 the active version already answers users): a
    local model of its own, on one torch thread so that it leaves a core to the workers' requests."""
    if settings.use_local_ai or settings.shadow_sample_rate == 0:
        return Shadow(None, 0.0, safety, None, ShadowReplies(engine))
    from assistant.local_provider import LocalProvider

    log.info("Shadow traffic: %.0f%% of Groq's turns are also answered by the active local version",
             100 * settings.shadow_sample_rate)
    local = LocalProvider(registry, replace(settings.local, threads=1), nice=SHADOW_NICE)
    return Shadow(local, settings.shadow_sample_rate, safety, shared_embedder(settings.embeddings_dir)[0],
                  ShadowReplies(engine))


def warn_if_models_ephemeral(settings: Settings) -> None:
    """On Railway, model versions outside the volume vanish with the container (unless a bucket keeps them)."""
    if settings.model_store_url:
        log.info("Model versions are kept in %s; MODEL_DIR %s is their local cache",
                 settings.model_store_url, settings.model_dir)
    elif settings.on_railway and not settings.is_on_volume(settings.model_dir):
        log.warning(
            "MODEL_DIR %s is outside the Railway volume (%s): trained models will be lost on restart. "
            "Mount a volume on this service and leave MODEL_DIR unset, or point it inside the volume.",
            settings.model_dir, settings.railway_volume_mount_path or "no volume mounted",
        )


def __getattr__(name: str) -> Flask:
    """`api.app`, built on first use so that importing `create_app` has no side effects."""
    if name != "app":
        raise AttributeError(name)
    globals()["app"] = application = create_app()
    return application


if __name__ == "__main__":
    dev_settings = cli_settings()
    create_app(dev_settings).run(host="127.0.0.1", port=dev_settings.port, threaded=True)
