"""The web node's half of acknowledged delivery.

Each web node listens on the delivery channel; for every request it emits the
message to its own sockets in the session's room (a local emit, not through
the message queue) with an ack callback, and stores a matching ack. On
`start_session` it replays the session's unacknowledged messages to the
joining socket.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import redis
from sqlalchemy import select

from common import metrics
from common.db import with_db_session
from common.delivery import DELIVERY_CHANNEL, ack_matches, delivery_event, record_ack
from common.logging_setup import log_context
from common.models import Message, awaiting_ack
from common.settings import get_settings
from web.extensions import socketio

log = logging.getLogger(__name__)

# At most this many unacknowledged messages are replayed on joining a session.
REPLAY_LIMIT = 50
# Reconnection backoff of the channel listener after a Redis failure.
MAX_RECONNECT_WAIT_S = 5.0

_listener_started = False
_listener_lock = threading.Lock()


def _ack_callback(event: str, payload: dict[str, Any]):
    def on_ack(*args: Any) -> None:
        ack = args[0] if args else None
        with log_context(session_id=payload.get("session_id")):
            if ack_matches(event, payload, ack) and record_ack(payload["message_pk"]):
                metrics.increment("messages_acknowledged", event=event)
                log.info("%s %s acknowledged", event, payload["message_pk"])

    return on_ack


def emit_with_ack(event: str, payload: dict[str, Any], to: str) -> None:
    """Emit to this node's sockets in room (or sid) `to`, collecting acks."""
    socketio.emit(event, payload, to=to, callback=_ack_callback(event, payload), ignore_queue=True)


def _listen_forever() -> None:
    wait_s = 0.5
    while True:
        client = redis.Redis.from_url(get_settings().redis_url, socket_connect_timeout=2)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(DELIVERY_CHANNEL)
            wait_s = 0.5
            for message in pubsub.listen():
                if message.get("type") == "message":
                    for delivery in json.loads(message["data"])["deliveries"]:
                        payload = delivery["payload"]
                        with log_context(session_id=payload["session_id"]):
                            emit_with_ack(delivery["event"], payload, to=payload["session_id"])
        except redis.RedisError as exc:
            log.warning("delivery listener lost Redis (%s); retrying in %.1fs", exc, wait_s)
        finally:
            pubsub.close()
            client.close()
        time.sleep(wait_s)  # a greenlet under gevent; backs off while Redis is down
        wait_s = min(wait_s * 2, MAX_RECONNECT_WAIT_S)


def ensure_delivery_listener() -> None:
    """Start this node's delivery listener once (on the first socket connection,
    so that CLI commands creating the app start no background work)."""
    global _listener_started
    if _listener_started:
        return
    with _listener_lock:
        if not _listener_started:
            socketio.start_background_task(_listen_forever)
            _listener_started = True


def replay_unacknowledged(session_id: str, sid: str) -> int:
    """Send the session's unacknowledged assistant messages to one socket."""
    with with_db_session() as db:
        messages = db.scalars(
            select(Message)
            .where(Message.session_id == session_id, awaiting_ack())
            .order_by(Message.message_pk)
            .limit(REPLAY_LIMIT)
        ).all()
    for message in messages:
        event, payload = delivery_event(message)
        emit_with_ack(event, payload, to=sid)
    return len(messages)
