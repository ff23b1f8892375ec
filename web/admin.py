"""GET /api/stats, GET /api/admin/learning, GET /api/admin/shadow and GET /api/admin/safety: the admin's overview,
behind `Authorization: Bearer $ADMIN_TOKEN`."""

from __future__ import annotations

from flask import Blueprint, jsonify

from assistant.redact import redact
from assistant.shadow import readiness
from storage.engine import is_persistent
from storage.training_runs import run_json
from web.auth import admin_only
from web.services import services

bp = Blueprint("admin", __name__, url_prefix="/api")
SHADOW_RECENT = 20  # pairs shown, newest first
SAFETY_DAYS, SAFETY_RECENT = 30, 20  # the window counted, and the screened messages shown, newest first


@bp.get("/stats")
@admin_only
def stats():
    """Totals, training eligibility against the threshold, training and serving state."""
    svc = services()
    settings, training, local = svc.settings, svc.training, svc.assistant.local
    running = training.supervisor.runs.running()
    return jsonify({
        **svc.stats.totals(),
        "messages_per_day": svc.stats.messages_per_day(),
        "eligible_since_last_training": training.policy.eligible_since_last_training(),
        "auto_train_threshold": settings.auto_train_threshold,
        "auto_training": {"enabled": settings.enable_auto_training, "running": running and run_json(running),
                          "cooldown_s": round(training.policy.cooldown_left()),
                          "lease_holder": training.supervisor.leases.holder()},
        "active_model": svc.registry.active_name(),
        "use_local_ai": settings.use_local_ai,
        "local_model": local.status() if local else None,
        "groq": {"configured": svc.assistant.configured, "model": settings.groq_model},
        "safety": svc.safety.status(),
        "database": {"engine": svc.database.engine.dialect.name, "persistent": is_persistent(
            svc.database.engine, settings.on_railway, settings.is_on_volume)},
    })


@bp.get("/admin/learning")
@admin_only
def learning():
    """What is stored to learn from and to remember: messages, embeddings, backlog, memory ids, the vector
    backend and model, and the near-duplicates the last run dropped."""
    svc = services()
    memory, last_run = svc.memory, svc.training.supervisor.runs.last_completed()
    return jsonify({
        **memory.store.counts(),
        "near_duplicates_dropped": last_run and last_run.near_duplicates,
        "last_run_id": last_run and last_run.id,
        "vector_backend": memory.store.backend,
        "embedding_model": memory.embedder and memory.embedder.name,
        "embedding_error": memory.error,
        "memory_enabled": svc.settings.memory_enabled,
    })


@bp.get("/admin/shadow")
@admin_only
def shadow():
    """The active version's shadow replies: counts, mean similarity to Groq's, and the newest pairs, redacted."""
    svc = services()
    version = svc.registry.active_name()
    report = svc.shadow.store.report(version, SHADOW_RECENT)  # no active version: nothing matches, all zero
    for pair in report["recent"]:
        pair.update(prompt=redact(pair["prompt"]), groq=redact(pair["groq"]), local=redact(pair["local"]))
    return jsonify({**report, "sample_rate": svc.settings.shadow_sample_rate,
                    "running": svc.shadow.local is not None, "verdict": readiness(report)})


@bp.get("/admin/safety")
@admin_only
def safety():
    """What the crisis screen did over 30 days: counts per level and layer, the judge's agreement with the local
    screen, and the newest screened messages, redacted."""
    report = services().screenings.report(SAFETY_DAYS, SAFETY_RECENT)
    for message in report["recent"]:
        message["text"] = redact(message["text"])
    return jsonify(report)
