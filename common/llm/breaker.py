"""A circuit breaker on the primary LLM provider, shared by every worker through Redis.

Closed: the primary is tried first. After LLM_BREAKER_FAILURES failures in a row it
opens: turns go to the fallback without trying the primary, for LLM_BREAKER_OPEN_S. Then
it is half-open: the next turn tries the primary; a success closes the breaker, a failure
opens it again at once. Without a fallback there is nothing to switch to: no breaker.

Redis unreachable: the breaker reads as closed (the primary is tried, as without one).
"""

from __future__ import annotations

import logging

import redis

from common.redis_clients import app_redis
from common.settings import get_settings

log = logging.getLogger(__name__)

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


def _keys(provider: str) -> tuple[str, str, str]:
    base = f"system1:llm_breaker:{provider}"
    return f"{base}:failures", f"{base}:open", f"{base}:tripped"


def state(provider: str) -> str:
    _failures_key, open_key, tripped_key = _keys(provider)
    try:
        is_open, tripped = app_redis().mget(open_key, tripped_key)
    except redis.RedisError as exc:
        log.warning("LLM breaker unreadable (%s): taken as closed", exc)
        return CLOSED
    if is_open:
        return OPEN
    return HALF_OPEN if tripped else CLOSED


def record_failure(provider: str) -> None:
    """Count a failure; open the breaker at the threshold, or at once when half-open."""
    settings = get_settings()
    failures_key, open_key, tripped_key = _keys(provider)
    open_ms = int(settings.llm_breaker_open_s * 1000)
    try:
        client = app_redis()
        pipe = client.pipeline()
        pipe.incr(failures_key)
        pipe.pexpire(failures_key, open_ms * 10)
        pipe.get(tripped_key)
        failures, _, tripped = pipe.execute()
        if failures >= settings.llm_breaker_failures or tripped:
            pipe = client.pipeline()
            pipe.set(open_key, 1, px=open_ms)
            pipe.set(tripped_key, 1)
            pipe.delete(failures_key)
            pipe.execute()
            log.warning("LLM breaker of the %s provider opened for %ss", provider, open_ms / 1000)
    except redis.RedisError as exc:
        log.warning("LLM breaker not updated (%s)", exc)


def record_success(provider: str) -> None:
    """A success closes the breaker."""
    failures_key, _open_key, tripped_key = _keys(provider)
    try:
        client = app_redis()
        if client.exists(failures_key, tripped_key):
            client.delete(failures_key, tripped_key)
    except redis.RedisError as exc:
        log.warning("LLM breaker not updated (%s)", exc)
