"""The worker's half of acknowledged delivery: the first delivery of a stored assistant
message, and the sweep that resends what clients have not acknowledged.

Resends run as one sweep, not as one task per message. The sweep is a Celery task on
the delivery queue: it claims every message whose last delivery is RESEND_INTERVAL_S old
(one UPDATE ... FOR UPDATE SKIP LOCKED ... RETURNING per RESEND_BATCH messages), asks the
web nodes to emit them (one Redis round trip per batch), then schedules itself with a
countdown to the next message due, at least SWEEP_MIN_WAIT_S later. Nothing sleeps.

Why not the architecture notes' countdown task per message: a Celery task per resend
(publish, reserve, ETA timer, ack) fell minutes behind under thousands of unacknowledged
messages (docs/performance.md, "Resend sweep vs countdown per message"). What clients see
is unchanged: the state is in PostgreSQL, a message is resent every RESEND_INTERVAL_S
(late by at most the sweep's wait), at most RESEND_MAX_TRIES times, never once its ack is
stored.

One sweep chain runs per deployment, and only while messages await a resend: a Redis key
(SWEEP_KEY) names the task id that holds it, with a lease; each sweep hands it to its
successor by compare-and-set, and a sweep that no longer holds it stops. A first delivery
and the periodic recovery sweep (Celery beat) start a chain when none holds the lease, so a
chain lost with a killed worker or a Redis restart comes back once its lease runs out.
Two chains at once (a lease that ran out while its task was late) are harmless: rows
locked by one are skipped by the other, and a message one resent is no longer due for
the other.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from redis.commands.core import Script
from sqlalchemy import Row

from common import metrics
from common.celery.app import celery_app
from common.celery.task_names import RESEND_TASK
from common.db import with_db_session
from common.delivery.protocol import StoredMessage, delivery_event
from common.delivery.publishing import publish_deliveries
from common.logging_setup import log_context
from common.queries import messages as message_queries
from common.redis_clients import app_redis
from common.settings import get_settings

log = logging.getLogger(__name__)

# Messages claimed per statement, and the most one sweep runs before it yields the worker.
RESEND_BATCH = 500
SWEEP_TIME_BUDGET_S = 2.0
# The shortest wait between two sweeps: the most a resend runs late, with the sweep's own
# time. Shorter costs more idle sweeps for little gain.
SWEEP_MIN_WAIT_S = 0.2
# How long past its countdown a chain's lease holds before another chain may start:
# longer than the delivery queue is ever expected to lag.
SWEEP_LEASE_GRACE_S = 10.0
SWEEP_KEY = "system1:resend_sweep"

# Set the lease holder to ARGV[2] (for ARGV[3] ms) only if it is ARGV[1] ('' = nobody).
_HAND_OVER_LUA = """
local holder = redis.call('GET', KEYS[1]) or ''
if holder ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""


# Delete the lease only if ARGV[1] holds it.
_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


@lru_cache(maxsize=1)
def _hand_over_script() -> Script:
    return app_redis().register_script(_HAND_OVER_LUA)


@lru_cache(maxsize=1)
def _release_script() -> Script:
    return app_redis().register_script(_RELEASE_LUA)


def _max_deliveries() -> int:
    return 1 + get_settings().resend_max_tries


def _recovery_window() -> timedelta:
    return timedelta(seconds=get_settings().recovery_window_s)


def start_delivery(message_pk: int) -> None:
    """First delivery of a stored message that was never delivered (the recovery sweep);
    a turn stores its reply as delivered once and calls `deliver_first` itself."""
    # Not durable: a first delivery forgotten in a crash is redone by the recovery sweep.
    with with_db_session(durable=False) as db:
        message = message_queries.count_first_delivery(db, message_pk, datetime.now(UTC))
        db.commit()
    if message is None:
        return  # delivered already (a redelivered turn or recovery), or acknowledged
    deliver_first(message)


def deliver_first(message: StoredMessage) -> None:
    """Publish a message counted as delivered once; the resend sweep takes it from there."""
    event, payload = delivery_event(message)
    nodes = publish_deliveries([(event, payload)])
    metrics.increment("messages_delivered", event=event)
    log.info("delivered %s %s to %s web node(s)", event, message.message_pk, nodes)
    if get_settings().resend_max_tries > 0:
        ensure_resend_sweep()


def _claim_due(now: datetime) -> list[Row]:
    """Count one more delivery of up to RESEND_BATCH due messages, oldest first."""
    settings = get_settings()
    # Not durable: an attempt count lost in a crash means one resend too many, dropped by
    # the client by its message_pk.
    with with_db_session(durable=False) as db:
        rows = message_queries.claim_due_resends(
            db,
            now,
            interval=timedelta(seconds=settings.resend_interval_s),
            max_deliveries=_max_deliveries(),
            window=_recovery_window(),
            limit=RESEND_BATCH,
        )
        db.commit()
    return rows


def resend_due_messages() -> int:
    """Resend every message due now, batch by batch; how many were resent."""
    resent = 0
    budget_ends = time.monotonic() + SWEEP_TIME_BUDGET_S
    while True:
        messages = _claim_due(datetime.now(UTC))
        if messages:
            deliveries = [delivery_event(message) for message in messages]
            nodes = publish_deliveries(deliveries)
            for event, count in Counter(event for event, _ in deliveries).items():
                metrics.increment("messages_resent", count, event=event)
            if log.isEnabledFor(logging.DEBUG):  # thousands a second: only when asked
                for message in messages:
                    with log_context(session_id=message.session_id):
                        log.debug(
                            "resent %s %s (attempt %s)",
                            message.event_name,
                            message.message_pk,
                            message.delivery_attempts,
                        )
            log.info("resent %s message(s) to %s web node(s)", len(messages), nodes)
            resent += len(messages)
        if len(messages) < RESEND_BATCH or time.monotonic() > budget_ends:
            return resent


def next_resend_wait() -> float | None:
    """Seconds until the next message is due, at least SWEEP_MIN_WAIT_S; None when no
    message awaits a resend."""
    interval = get_settings().resend_interval_s
    now = datetime.now(UTC)
    with with_db_session() as db:
        oldest = message_queries.oldest_resendable_delivery(
            db, now, _max_deliveries(), _recovery_window()
        )
    if oldest is None:
        return None
    due_in = (oldest - now).total_seconds() + interval
    return max(min(SWEEP_MIN_WAIT_S, interval), due_in)


def _hand_over(holder: str, countdown: float) -> bool:
    """Schedule the next sweep in `countdown` s if `holder` ('' = nobody) holds the chain."""
    successor = uuid.uuid4().hex
    lease_ms = int((countdown + SWEEP_LEASE_GRACE_S) * 1000)
    if not _hand_over_script()(keys=[SWEEP_KEY], args=[holder, successor, lease_ms]):
        return False
    resend_unacknowledged.apply_async(countdown=countdown, task_id=successor)
    return True


def ensure_resend_sweep() -> bool:
    """Start a resend sweep chain unless one holds the lease; True if started. The first
    sweep runs soon: messages may be due already (after a Redis restart, say)."""
    return _hand_over("", SWEEP_MIN_WAIT_S)


@celery_app.task(name=RESEND_TASK, bind=True, acks_late=True, ignore_result=True)
def resend_unacknowledged(self) -> int:
    """One resend sweep: resend what is due, then schedule the next sweep, or end the
    chain when no message awaits a resend (a first delivery starts the next one)."""
    holder = self.request.id
    if app_redis().get(SWEEP_KEY) != holder.encode():
        log.info("resend sweep %s stops: another sweep holds the chain", holder)
        return 0
    wait: float | None = get_settings().resend_interval_s
    try:
        resent = resend_due_messages()
        wait = next_resend_wait()
    finally:
        # Even after a database error: the chain goes on and tries again.
        if wait is not None:
            _hand_over(holder, wait)
    # A message delivered while this sweep was ending found the lease still held and
    # started no chain: look again once the lease is released.
    released = wait is None and _release_script()(keys=[SWEEP_KEY], args=[holder])
    if released and next_resend_wait() is not None:
        ensure_resend_sweep()
    return resent
