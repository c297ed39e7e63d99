"""Acknowledged delivery of finished assistant messages (`mojo_message`, and
`draft_message` for drafts).

The state lives in PostgreSQL (md_message.acknowledged_at, delivery_attempts,
last_delivery_at), never only in a process's memory. Delivering means
publishing a delivery request on a Redis channel that every web node listens
to; each node emits the message to *its own* sockets in the session's room
with an ack callback, because only the node that holds a socket can receive
that socket's ack (a worker's write-only emitter cannot). A resend sweep, a
Celery task that reschedules itself with a countdown, resends what is due until
an ack is stored (worker/delivery.py).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Protocol

import redis
from sqlalchemy import update

from common.db import autocommit_connection
from common.models import Message
from common.settings import get_settings

log = logging.getLogger(__name__)

DELIVERY_CHANNEL = "system1:delivery"

# The field of the client's ack that must match, per event (Mojodex clients).
ACK_KEYS = {"mojo_message": "message_pk", "draft_message": "produced_text_version_pk"}


class StoredMessage(Protocol):
    """What a delivery needs of a stored message: a Message, or a row of its columns."""

    message_pk: int
    session_id: str
    event_name: str
    message: dict[str, Any]


def delivery_event(message: StoredMessage) -> tuple[str, dict[str, Any]]:
    """The Socket.IO event and payload that deliver a stored assistant message."""
    body = message.message
    payload: dict[str, Any] = {
        "message_pk": message.message_pk,
        "text": body.get("text", ""),
        "text_with_tags": body.get("text_with_tags", body.get("text", "")),
        "session_id": message.session_id,
        "user_task_execution_pk": body.get("user_task_execution_pk"),
        "audio": False,
    }
    if message.event_name == "draft_message":
        for key in (
            "produced_text",
            "produced_text_title",
            "produced_text_pk",
            "produced_text_version_pk",
            "produced_text_version_index",
            "text_type",
        ):
            payload[key] = body.get(key)
    return message.event_name, payload


def ack_matches(event: str, payload: dict[str, Any], ack: Any) -> bool:
    """Whether a client's ack acknowledges this message.

    python-socketio clients answer every ack request, even with nothing (the
    Mojodex CLI returns None for other sessions' events): only an ack carrying
    the matching id counts.
    """
    if not isinstance(ack, dict):
        return False
    key = ACK_KEYS.get(event, "message_pk")
    expected = payload.get(key)
    received = ack.get(key)
    if expected is None or received is None:
        return False
    return str(received) == str(expected)


def record_acks(message_pks: Sequence[int]) -> set[int]:
    """Store the acknowledgments of these messages, in one statement; the pks whose
    first ack this call stored.

    Not durable (see `with_db_session`): an ack lost in a crash costs one more resend,
    which the client drops by its message_pk."""
    with autocommit_connection(durable=False) as connection:
        stored = connection.execute(
            update(Message)
            .where(Message.message_pk.in_(message_pks), Message.acknowledged_at.is_(None))
            .values(acknowledged_at=datetime.now(UTC))
            .returning(Message.message_pk)
        ).scalars()
        return set(stored)


@lru_cache(maxsize=1)
def delivery_redis() -> redis.Redis:
    return redis.Redis.from_url(
        get_settings().redis_url, socket_connect_timeout=2, socket_timeout=5
    )


# Deliveries per message on the channel: a resend sweep publishes thousands a second.
PUBLISH_CHUNK = 200


def publish_deliveries(deliveries: Sequence[tuple[str, dict[str, Any]]]) -> int:
    """Ask every web node to emit these (event, payload) pairs to its sockets in each
    payload's session room: one channel message per PUBLISH_CHUNK, in one round trip.

    Returns the number of web nodes that received the request. A Redis error
    propagates: the message stays due and the resend sweep tries again.
    """
    if not deliveries:
        return 0
    pipe = delivery_redis().pipeline(transaction=False)
    for start in range(0, len(deliveries), PUBLISH_CHUNK):
        chunk = deliveries[start : start + PUBLISH_CHUNK]
        request = {"deliveries": [{"event": e, "payload": p} for e, p in chunk]}
        pipe.publish(DELIVERY_CHANNEL, json.dumps(request))
    return max(int(nodes) for nodes in pipe.execute())
