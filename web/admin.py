"""Admin endpoints, behind `Authorization: Bearer $ADMIN_TOKEN`."""

from __future__ import annotations

import hmac
from functools import wraps

from flask import Blueprint, jsonify, request

from web.errors import ApiError
from web.services import services

bp = Blueprint("admin", __name__, url_prefix="/api")


def admin_only(view):
    """403 when no ADMIN_TOKEN is set, 401 unless the request carries it."""

    @wraps(view)
    def guarded(*args, **kwargs):
        expected = services().settings.admin_token
        if not expected:
            raise ApiError(403, "admin_disabled", "Admin endpoints are off: set ADMIN_TOKEN on the server.")
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected.encode()):
            raise ApiError(401, "unauthorized", "Send the admin token as 'Authorization: Bearer <token>'.",
                           {"WWW-Authenticate": "Bearer"})
        return view(*args, **kwargs)

    return guarded


@bp.get("/stats")
@admin_only
def stats():
    """Totals, training eligibility against the threshold, and the serving flags."""
    svc = services()
    settings = svc.settings
    return jsonify({
        **svc.repo.totals(),
        "eligible_since_last_training": svc.repo.count_eligible_replies(),
        "auto_train_threshold": settings.auto_train_threshold,
        "auto_training": {"enabled": settings.enable_auto_training, "running": None},
        "active_model": None,
        "use_local_ai": settings.use_local_ai,
        "groq": {"configured": svc.assistant.configured, "model": settings.groq_model},
    })
