"""Health of the node's dependencies: database, Redis and the Celery workers."""

from __future__ import annotations

import logging
from typing import Any

import redis
from sqlalchemy import text

from common.celery.app import celery_app
from common.redis_clients import health_redis
from common.settings import get_settings
from web.extensions import db

log = logging.getLogger(__name__)


def _check_database() -> dict[str, Any]:
    try:
        db.session.execute(text("SELECT 1"))
        db.session.rollback()
        return {"ok": True}
    except Exception as exc:  # any failure means "down"; the detail goes to the log
        log.warning("health: database down: %s", exc)
        db.session.rollback()
        return {"ok": False, "error": "unreachable"}


def _check_redis() -> dict[str, Any]:
    try:
        health_redis().ping()
        return {"ok": True}
    except redis.RedisError as exc:
        log.warning("health: redis down: %s", exc)
        return {"ok": False, "error": "unreachable"}


def _check_workers() -> dict[str, Any]:
    try:
        # A fresh connection each time: a pooled one remembers declaring the
        # reply queue, which a restarted Redis has forgotten.
        with celery_app.connection_for_write() as connection:
            replies = celery_app.control.ping(
                timeout=get_settings().health_timeout_s, limit=1, connection=connection
            )
    except Exception as exc:  # the broker can fail in many ways; all mean "no answer"
        log.warning("health: worker ping failed: %s", exc)
        return {"ok": False, "error": "no worker answered"}
    if not replies:
        return {"ok": False, "error": "no worker answered"}
    return {"ok": True, "answered": sorted(name for reply in replies for name in reply)}


def check_health() -> tuple[dict[str, Any], int]:
    """The state of each dependency; 200 when all are up, else 503 naming the rest."""
    checks = {"database": _check_database(), "redis": _check_redis()}
    # Workers are reached through Redis: without it they cannot answer.
    checks["workers"] = (
        _check_workers() if checks["redis"]["ok"] else {"ok": False, "error": "redis is down"}
    )
    down = [name for name, check in checks.items() if not check["ok"]]
    if down:
        return {"status": "unavailable", "down": down, "checks": checks}, 503
    return {"status": "ok", "down": [], "checks": checks}, 200
