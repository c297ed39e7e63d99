"""Delivery tasks: send a stored assistant message, resend what clients have not
acknowledged, and recover work that was lost (a worker killed mid-turn, a Redis
restart that dropped queued tasks).

Resends run as one sweep, not as one task per message. The sweep is a Celery task on
the delivery queue: it claims every message whose last delivery is RESEND_INTERVAL_S old
(one UPDATE ... FOR UPDATE SKIP LOCKED ... RETURNING per RESEND_BATCH messages), asks the
web nodes to emit them (one Redis round trip per batch), then schedules itself with a
countdown to the next message due, at least SWEEP_MIN_WAIT_S later. Nothing sleeps.

Why not the architecture notes' countdown task per message: every resend was then a
Celery task of its own (publish, reserve, ETA timer, ack: milliseconds of worker CPU
each), so 10,000 unacknowledged messages, 2,000 resends a second, fell minutes behind on
two cores (bench/results: p99 127 s late). A sweep resends hundreds of messages in a few
milliseconds. What clients see is unchanged: the state is in PostgreSQL, a message is
resent every RESEND_INTERVAL_S (late by at most the sweep's wait), at most
RESEND_MAX_TRIES times, never once its ack is stored.

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
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from redis.commands.core import Script
from sqlalchemy import ColumnElement, Row, and_, exists, func, or_, select, update
from sqlalchemy.orm import aliased

from common import metrics
from common.db import with_db_session
from common.delivery import StoredMessage, delivery_event, delivery_redis, publish_deliveries
from common.logging_setup import log_context
from common.models import USER_SENDER, Message, awaiting_ack
from common.settings import get_settings
from worker.celery_app import ASSISTANT_TURN_TASK, RECOVER_TASK, RESEND_TASK, celery_app

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
# At most this many turns and first deliveries are restarted per recovery sweep.
RECOVERY_BATCH = 500

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
    return delivery_redis().register_script(_HAND_OVER_LUA)


@lru_cache(maxsize=1)
def _release_script() -> Script:
    return delivery_redis().register_script(_RELEASE_LUA)


def _max_deliveries() -> int:
    return 1 + get_settings().resend_max_tries


def _resendable(now: datetime) -> ColumnElement[bool]:
    """Delivered at least once, tries left, last delivery within the recovery window
    (older ones are left to the replay on joining the session)."""
    window = timedelta(seconds=get_settings().recovery_window_s)
    return and_(
        awaiting_ack(),
        Message.delivery_attempts >= 1,
        Message.delivery_attempts < _max_deliveries(),
        Message.last_delivery_at > now - window,
    )


@dataclass
class StoredReply:
    """A stored assistant message, as a delivery needs it (see common.delivery)."""

    message_pk: int
    session_id: str
    event_name: str
    message: dict[str, Any]


def start_delivery(message_pk: int) -> None:
    """First delivery of a stored message that was never delivered (the recovery sweep);
    a turn stores its reply as delivered once and calls `deliver_first` itself."""
    # Not durable: a first delivery forgotten in a crash is redone by the recovery sweep.
    with with_db_session(durable=False) as db:
        message = db.scalar(
            update(Message)
            .where(Message.message_pk == message_pk, Message.delivery_attempts == 0, awaiting_ack())
            .values(delivery_attempts=1, last_delivery_at=datetime.now(UTC))
            .returning(Message)
        )
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
    """Count one more delivery of up to RESEND_BATCH due messages, oldest first; the
    columns a delivery needs, not ORM objects (thousands a second)."""
    due = and_(
        _resendable(now),
        Message.last_delivery_at <= now - timedelta(seconds=get_settings().resend_interval_s),
    )
    # A CTE: PostgreSQL runs it once. As an IN (subquery), the planner may run the locking
    # subquery again for every row and claim far more than RESEND_BATCH.
    picked = (
        select(Message.message_pk)
        .where(due)
        .order_by(Message.last_delivery_at)
        .limit(RESEND_BATCH)
        .with_for_update(skip_locked=True)
        .cte("picked")
    )
    # Not durable: an attempt count lost in a crash means one resend too many, dropped by
    # the client by its message_pk.
    with with_db_session(durable=False) as db:
        rows = db.execute(
            update(Message.__table__)
            .where(Message.message_pk == picked.c.message_pk)
            .values(delivery_attempts=Message.delivery_attempts + 1, last_delivery_at=now)
            .returning(
                Message.message_pk,
                Message.session_id,
                Message.event_name,
                Message.message,
                Message.delivery_attempts,
            )
        ).all()
        db.commit()
    return list(rows)


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


def _next_wait() -> float | None:
    """Seconds until the next message is due, at least SWEEP_MIN_WAIT_S; None when no
    message awaits a resend."""
    interval = get_settings().resend_interval_s
    now = datetime.now(UTC)
    with with_db_session() as db:
        oldest = db.scalar(select(func.min(Message.last_delivery_at)).where(_resendable(now)))
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
    if delivery_redis().get(SWEEP_KEY) != holder.encode():
        log.info("resend sweep %s stops: another sweep holds the chain", holder)
        return 0
    wait: float | None = get_settings().resend_interval_s
    try:
        resent = resend_due_messages()
        wait = _next_wait()
    finally:
        # Even after a database error: the chain goes on and tries again.
        if wait is not None:
            _hand_over(holder, wait)
    # A message delivered while this sweep was ending found the lease still held and
    # started no chain: look again once the lease is released.
    released = wait is None and _release_script()(keys=[SWEEP_KEY], args=[holder])
    if released and _next_wait() is not None:
        ensure_resend_sweep()
    return resent


@celery_app.task(name=RECOVER_TASK, ignore_result=True)
def recover_lost_work() -> dict[str, int]:
    """Restart turns whose lease ran out, first deliveries that never happened, and the
    resend sweep if no chain holds its lease.

    Run periodically by Celery beat. Lost work comes from a worker killed mid-turn or
    holding the sweep's countdown task, or a Redis restart that dropped queued tasks.
    """
    settings = get_settings()
    now = datetime.now(UTC)
    window_start = now - timedelta(seconds=settings.recovery_window_s)
    stale_before = now - timedelta(seconds=3 * settings.resend_interval_s)
    reply = aliased(Message)
    with with_db_session() as db:
        undelivered = db.scalars(
            select(Message.message_pk)
            .where(
                awaiting_ack(),
                Message.delivery_attempts == 0,
                Message.creation_date < stale_before,
                Message.creation_date > window_start,
            )
            .limit(RECOVERY_BATCH)
        ).all()
        turns = db.scalars(
            select(Message.message_pk)
            .where(
                Message.sender == USER_SENDER,
                Message.creation_date > window_start,
                or_(Message.turn_lease_until.is_(None), Message.turn_lease_until < now),
                ~exists().where(reply.in_reply_to_pk == Message.message_pk),
            )
            .limit(RECOVERY_BATCH)
        ).all()
    for message_pk in undelivered:
        start_delivery(message_pk)
    for message_pk in turns:
        celery_app.send_task(ASSISTANT_TURN_TASK, args=[message_pk])
    sweep_started = _next_wait() is not None and ensure_resend_sweep()
    if undelivered or turns or sweep_started:
        log.warning(
            "recovered %s first deliveries and %s turn(s); resend sweep %s",
            len(undelivered),
            len(turns),
            "started" if sweep_started else "running",
        )
    return {
        "first_deliveries": len(undelivered),
        "turns": len(turns),
        "resend_sweep_started": int(sweep_started),
    }
