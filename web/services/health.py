"""Health of the node's dependencies: database, Redis, the Celery workers; and the LLM
providers' breaker states, for information."""

from __future__ import annotations

import logging
from typing import Any

import redis
from sqlalchemy import text

from common.celery.app import celery_app
from common.llm import breaker
from common.llm.providers import fallback_provider
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


def _llm_providers() -> dict[str, Any]:
    """Each LLM provider's breaker state (closed, open, half_open); without a fallback the
    primary has no breaker and reads closed."""
    providers = {"primary": {"model": get_settings().llm_model, "state": breaker.CLOSED}}
    fallback = fallback_provider()
    if fallback is not None:
        providers["primary"]["state"] = breaker.state("primary")
        providers["fallback"] = {"model": fallback.model, "state": breaker.CLOSED}
    return {"ok": True, "providers": providers}


def check_health() -> tuple[dict[str, Any], int]:
    """The state of each dependency; 200 when all are up, else 503 naming the rest."""
    checks = {"database": _check_database(), "redis": _check_redis()}
    # Workers are reached through Redis: without it they cannot answer.
    checks["workers"] = (
        _check_workers() if checks["redis"]["ok"] else {"ok": False, "error": "redis is down"}
    )
    # Informational: a provider down is the fallback's job, not a reason to take this
    # node out of a load balancer.
    checks["llm"] = _llm_providers() if checks["redis"]["ok"] else {"ok": True}
    down = [name for name, check in checks.items() if not check["ok"]]
    if down:
        return {"status": "unavailable", "down": down, "checks": checks}, 503
    return {"status": "ok", "down": [], "checks": checks}, 200
