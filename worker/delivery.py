"""Delivery tasks: send a stored assistant message, resend it until it is
acknowledged, and recover work that was lost (a worker killed mid-turn, a
Redis restart that dropped queued tasks).

Every step is a compare-and-set on the stored delivery state, so duplicate
task chains (a recovered chain racing a slow original) collapse into one:
only the task that advances `delivery_attempts` from the value it expects
sends anything. Nothing sleeps; the next try is a Celery countdown.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.orm import aliased

from common import metrics
from common.db import with_db_session
from common.delivery import delivery_event, publish_delivery
from common.models import MOJO_SENDER, USER_SENDER, Message
from common.settings import get_settings
from worker.celery_app import (
    ASSISTANT_TURN_TASK,
    RECOVER_TASK,
    RESEND_TASK,
    celery_app,
)

log = logging.getLogger(__name__)

# At most this many messages are restarted per sweep, so one sweep stays short.
RECOVERY_BATCH = 500


def _advance_attempt(message_pk: int, attempt: int) -> Message | None:
    """Count one more delivery if the message is still unacknowledged, still
    at `attempt` deliveries and has tries left; the message, or None."""
    max_deliveries = 1 + get_settings().resend_max_tries
    if attempt >= max_deliveries:
        return None
    # Not durable: an attempt count lost in a crash stops this chain's compare-and-set, and
    # the recovery sweep restarts the chain from what is stored.
    with with_db_session(durable=False) as db:
        message = db.scalar(
            update(Message)
            .where(
                Message.message_pk == message_pk,
                Message.delivery_attempts == attempt,
                Message.acknowledged_at.is_(None),
                Message.in_error_state.is_(None),
            )
            .values(delivery_attempts=attempt + 1, last_delivery_at=datetime.now(UTC))
            .returning(Message)
        )
        db.commit()
    return message


def _send_and_schedule(message: Message) -> None:
    event, payload = delivery_event(message)
    nodes = publish_delivery(event, payload)
    sent = "messages_delivered" if message.delivery_attempts == 1 else "messages_resent"
    metrics.increment(sent, event=event)
    log.info(
        "delivered %s %s (attempt %s) to %s web node(s)",
        event,
        message.message_pk,
        message.delivery_attempts,
        nodes,
    )
    if message.delivery_attempts < 1 + get_settings().resend_max_tries:
        resend_unacknowledged.apply_async(
            args=[message.message_pk, message.delivery_attempts],
            countdown=get_settings().resend_interval_s,
        )


def start_delivery(message_pk: int) -> None:
    """First delivery of a freshly stored message, and its resend schedule."""
    message = _advance_attempt(message_pk, 0)
    if message is not None:
        _send_and_schedule(message)


@celery_app.task(name=RESEND_TASK, acks_late=True, ignore_result=True)
def resend_unacknowledged(message_pk: int, attempt: int) -> None:
    """Send the message again unless it was acknowledged; reschedule itself."""
    message = _advance_attempt(message_pk, attempt)
    if message is None:
        return
    _send_and_schedule(message)


@celery_app.task(name=RECOVER_TASK, ignore_result=True)
def recover_lost_work() -> dict[str, int]:
    """Restart resend chains that stopped and turns whose lease ran out.

    Run periodically by Celery beat. Lost chains come from a worker killed
    while holding countdown tasks, or a Redis restart that dropped them.
    """
    settings = get_settings()
    now = datetime.now(UTC)
    window_start = now - timedelta(seconds=settings.recovery_window_s)
    stale_before = now - timedelta(seconds=3 * settings.resend_interval_s)
    reply = aliased(Message)
    with with_db_session() as db:
        chains = db.execute(
            select(Message.message_pk, Message.delivery_attempts)
            .where(
                Message.sender == MOJO_SENDER,
                Message.acknowledged_at.is_(None),
                Message.in_error_state.is_(None),
                Message.delivery_attempts < 1 + settings.resend_max_tries,
                or_(
                    Message.last_delivery_at < stale_before,
                    and_(Message.last_delivery_at.is_(None), Message.creation_date < stale_before),
                ),
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
    for message_pk, attempts in chains:
        resend_unacknowledged.apply_async(args=[message_pk, attempts])
    for message_pk in turns:
        celery_app.send_task(ASSISTANT_TURN_TASK, args=[message_pk])
    if chains or turns:
        log.warning("recovered %s resend chain(s) and %s turn(s)", len(chains), len(turns))
    return {"resend_chains": len(chains), "turns": len(turns)}
