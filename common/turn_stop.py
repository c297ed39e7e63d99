"""Stopping an assistant turn: a Redis key per user message being answered.

Any web node sets the key (POST /assistant_turn_stop); whichever worker runs the turn
reads it right after its claim and between chunks, so neither needs to know where the
other runs. A Celery revoke would not do: it reaches only workers that hold the task in
memory, and a turn already streaming ignores it.
"""

from __future__ import annotations

import logging

import redis

from common.redis_clients import app_redis
from common.settings import get_settings

log = logging.getLogger(__name__)

KEY_PREFIX = "system1:stop:"


def stop_key(user_message_pk: int) -> str:
    return f"{KEY_PREFIX}{user_message_pk}"


def request_stop(user_message_pk: int) -> None:
    """Ask the turn answering `user_message_pk` to stop. Raises RedisError (a 503)."""
    settings = get_settings()
    # Long enough for a queued turn restarted by the recovery sweep to see it too.
    ttl_s = int(max(settings.turn_deadline_s, settings.recovery_window_s)) + 60
    app_redis().set(stop_key(user_message_pk), 1, ex=ttl_s)


def stop_requested(user_message_pk: int) -> bool:
    """Whether a stop was asked for; False if Redis cannot say (the turn goes on: a
    Redis outage must not end answers)."""
    try:
        return bool(app_redis().exists(stop_key(user_message_pk)))
    except redis.RedisError as exc:
        log.warning("cannot read the stop flag of message %s: %s", user_message_pk, exc)
        return False
