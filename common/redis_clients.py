"""Every Redis client of the runtime is built here, with timeouts that keep a Redis outage
from hanging a request or a turn.

A `redis.Redis` over its connection pool is safe to share between threads and greenlets,
so each purpose has one client per process.
"""

from __future__ import annotations

from functools import lru_cache

import redis

from common.settings import get_settings

# Commands: a Redis that does not answer fails fast (a 503, a logged metric), never hangs.
CONNECT_TIMEOUT_S = 2.0
COMMAND_TIMEOUT_S = 5.0


def new_redis_client(
    url: str,
    connect_timeout_s: float = CONNECT_TIMEOUT_S,
    timeout_s: float | None = COMMAND_TIMEOUT_S,
) -> redis.Redis:
    """A client of `url`; `timeout_s=None` for a subscriber that waits for messages."""
    return redis.Redis.from_url(
        url, socket_connect_timeout=connect_timeout_s, socket_timeout=timeout_s
    )


@lru_cache(maxsize=1)
def app_redis() -> redis.Redis:
    """REDIS_URL: deliveries, the resend sweep's lease, cluster metrics."""
    return new_redis_client(get_settings().redis_url)


@lru_cache(maxsize=1)
def health_redis() -> redis.Redis:
    """REDIS_URL for /health, with HEALTH_TIMEOUT_S: the probe answers within its bound."""
    timeout = get_settings().health_timeout_s
    return new_redis_client(get_settings().redis_url, timeout, timeout)


@lru_cache(maxsize=1)
def broker_redis() -> redis.Redis | None:
    """The Celery broker when it is a Redis (queue lengths for /metrics), else None."""
    url = get_settings().broker_url
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return None
    timeout = get_settings().health_timeout_s
    return new_redis_client(url, timeout, timeout)


def subscriber_redis() -> redis.Redis:
    """A new client of REDIS_URL for a pub/sub listener: no read timeout, it waits."""
    return new_redis_client(get_settings().redis_url, timeout_s=None)
