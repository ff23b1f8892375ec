"""Forgetting a person: DELETE /api/memories/<memory_id>. The unguessable memory id is the capability."""

from __future__ import annotations

from flask import Blueprint

from web.services import services
from web.validation import checked_memory_id

bp = Blueprint("memories", __name__, url_prefix="/api/memories")


@bp.delete("/<memory_id>")
def forget(memory_id: str):
    """Forget everything remembered under this id; the conversations themselves stay until erased."""
    services().memory.store.forget(checked_memory_id(memory_id))
    return "", 204
