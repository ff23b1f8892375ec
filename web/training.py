"""Admin endpoints for training runs and model versions."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from jobs.supervisor import TrainingBusy
from registry.versions import RegistryError, StoreUnavailable, version_json
from storage.training_runs import run_json
from web.auth import admin_only
from web.errors import ApiError
from web.services import services
from web.validation import training_request, try_request

bp = Blueprint("training", __name__, url_prefix="/api/admin")


@bp.get("/training")
@admin_only
def runs():
    """Recent runs, newest first, with live progress while one runs."""
    recent = services().training.supervisor.runs.recent(20)
    return jsonify({"runs": [run_json(r) for r in recent],
                    "running": next((run_json(r) for r in recent if r.status == "running"), None)})


@bp.post("/training")
@admin_only
def start():
    """Start a run now, whatever the count of new messages; 409 while one runs.

    It continues the active version unless the body asks for ``{"from_base": true}``."""
    from_base = training_request(request)
    try:
        run_id = services().training.supervisor.start_now("admin", from_base)
    except TrainingBusy as e:
        raise ApiError(409, "training_running", f"{e} Wait for it to finish; GET /api/admin/training shows it.")
    return jsonify({"run_id": run_id, "status": "running"}), 202


@bp.get("/models")
@admin_only
def models():
    """Model versions with their metrics, newest first, and which one is active."""
    registry = services().registry
    try:
        active = registry.active()
        versions = [version_json(v, active) for v in registry.versions()]
    except StoreUnavailable as e:
        raise _store_unavailable(e) from None
    return jsonify({"active": active and active.name, "versions": versions})


@bp.post("/models/<version>/try")
@admin_only
def try_version(version: str):
    """A reply from any version to a conversation the admin writes; nothing is stored."""
    svc = services()
    try:
        if svc.registry.get(version) is None:
            raise _not_found(version)
        completion = svc.tryout.reply(version, try_request(request, svc.settings.max_message_chars))
    except StoreUnavailable as e:
        raise _store_unavailable(e) from None
    except RegistryError:
        raise _not_found(version) from None
    return jsonify({"reply": completion.text, "version": version, "latency_ms": completion.latency_ms,
                    "finish_reason": completion.finish_reason, "unsafe": svc.safety.unsafe(completion.text)})


@bp.post("/models/<version>/activate")
@admin_only
def activate(version: str):
    """Make a version active: promote a rejected candidate or roll back to an older one."""
    try:
        activated = services().registry.activate(version)
    except StoreUnavailable as e:
        raise _store_unavailable(e) from None
    except RegistryError:
        raise _not_found(version) from None
    return jsonify({"active": activated.name})


def _not_found(version: str) -> ApiError:
    """404 for a version name that is not an intact version."""
    return ApiError(404, "model_not_found", f"No intact model version named {version!r}; "
                    "GET /api/admin/models lists them.")


def _store_unavailable(error: StoreUnavailable) -> ApiError:
    """503 with the registry's advice (it names the variables to check, never their values)."""
    return ApiError(503, "model_store_unavailable", str(error), headers={"Retry-After": "30"})
