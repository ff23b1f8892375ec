"""Liveness, readiness and database health."""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify
from sqlalchemy import inspect
from sqlalchemy.exc import SQLAlchemyError

from embeddings.vectors import PGVECTOR
from storage.engine import is_persistent
from storage.migrate import is_current
from web.services import services

log = logging.getLogger(__name__)
bp = Blueprint("health", __name__, url_prefix="/health")


@bp.get("")
def alive():
    """The process answers; touches nothing else."""
    return jsonify({"status": "ok"})


@bp.get("/ready")
def ready():
    """200 once this worker can answer as configured: the schema is current and, with USE_LOCAL_AI=1,
    the active version is loaded (or has failed to load, so Groq answers); 503 with what it waits for."""
    svc = services()
    waiting_for = []
    try:
        if not is_current(svc.database.engine):
            waiting_for.append("migrations")
        local = svc.assistant.local
        if local is not None and not local.ready():
            waiting_for.append("local_model")
    except SQLAlchemyError as e:
        log.error("Readiness check could not reach the database: %s", type(e).__name__)
        waiting_for.append("database")
    if waiting_for:
        return jsonify({"ready": False, "waiting_for": waiting_for}), 503
    return jsonify({"ready": True})


@bp.get("/db")
def database():
    """Engine, reachability, whether it takes writes, and whether the data survives a restart."""
    body, status = _database_state()
    return jsonify(body), status


@bp.get("/db/tables")
def tables():
    """The database state and the tables it holds."""
    body, status = _database_state()
    if body["reachable"]:
        body["tables"] = sorted(inspect(services().database.engine).get_table_names())
    return jsonify(body), status


def _database_state() -> tuple[dict, int]:
    """The fields both database checks report, and 503 when the database is down."""
    svc = services()
    engine = svc.database.engine
    reachable = writable = False
    try:
        svc.database.ping()
        reachable = True
        svc.database.check_writable()
        writable = True
    except SQLAlchemyError as e:
        log.error("Database health check failed (%s): %s", "write" if reachable else "connect", type(e).__name__)
    body = {
        "engine": engine.dialect.name,
        "reachable": reachable,
        "writable": writable,
        "persistent": is_persistent(engine, svc.settings.on_railway, svc.settings.is_on_volume),
        "pgvector": svc.memory.store.backend == PGVECTOR,
    }
    return body, 200 if writable else 503
