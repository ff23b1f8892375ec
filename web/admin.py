"""GET /api/stats: the admin's overview, behind `Authorization: Bearer $ADMIN_TOKEN`."""

from __future__ import annotations

from flask import Blueprint, jsonify

from storage.engine import is_persistent
from storage.training_runs import run_json
from web.auth import admin_only
from web.services import services

bp = Blueprint("admin", __name__, url_prefix="/api")


@bp.get("/stats")
@admin_only
def stats():
    """Totals, training eligibility against the threshold, training and serving state."""
    svc = services()
    settings, training, local = svc.settings, svc.training, svc.assistant.local
    running = training.supervisor.runs.running()
    return jsonify({
        **svc.repo.totals(),
        "messages_per_day": svc.repo.messages_per_day(),
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
        "database": {"engine": svc.repo.engine.dialect.name, "persistent": is_persistent(
            svc.repo.engine, settings.on_railway, settings.is_on_volume)},
    })
