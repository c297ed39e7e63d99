"""The web node's half of acknowledged delivery (common/delivery/ has the rest).

Each web node reads the delivery channel (on the subscription of its Socket.IO message
queue, web/sockets/message_queue.py); for every request it emits the
message to its own sockets in the session's room (a local emit, not through
the message queue) with an ack callback, and stores a matching ack. On
`start_session` it replays the session's unacknowledged messages to the
joining socket.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from typing import Any

from common import metrics
from common.db import with_db_session
from common.delivery.acks import record_acks
from common.delivery.protocol import ack_matches, delivery_event
from common.logging_setup import log_context
from common.queries import messages as message_queries
from web.extensions import socketio

log = logging.getLogger(__name__)

# At most this many unacknowledged messages are replayed on joining a session.
REPLAY_LIMIT = 50


class AckRecorder:
    """Stores the acks this node receives in batches: one UPDATE per batch, not a
    transaction per ack (docs/performance.md, "Ack batching").

    An ack is queued here and a background task stores what is queued; acks that arrive
    while it waits for the database go into the next batch. The client's ack callback
    never waits.
    """

    def __init__(self) -> None:
        self._queued: list[tuple[str, int, str | None]] = []
        self._flushing = False
        self._lock = threading.Lock()

    def queue(self, event: str, message_pk: int, session_id: str | None) -> None:
        with self._lock:
            self._queued.append((event, message_pk, session_id))
            if self._flushing:
                return
            self._flushing = True
        socketio.start_background_task(self._flush)

    def _flush(self) -> None:
        while True:
            with self._lock:
                batch, self._queued = self._queued, []
                if not batch:
                    self._flushing = False
                    return
            try:
                first = record_acks([message_pk for _, message_pk, _ in batch])
            except Exception:
                # The messages stay unacknowledged: they are resent and acked again.
                log.exception("could not store %s ack(s)", len(batch))
                continue
            stored = [(event, pk, sid) for event, pk, sid in batch if pk in first]
            for event, count in Counter(event for event, _, _ in stored).items():
                metrics.increment("messages_acknowledged", count, event=event)
            for event, message_pk, session_id in stored:
                with log_context(session_id=session_id):
                    log.info("%s %s acknowledged", event, message_pk)


acks = AckRecorder()


def _ack_callback(event: str, payload: dict[str, Any]):
    def on_ack(*args: Any) -> None:
        if ack_matches(event, payload, args[0] if args else None):
            acks.queue(event, payload["message_pk"], payload.get("session_id"))

    return on_ack


def emit_with_ack(event: str, payload: dict[str, Any], to: str) -> None:
    """Emit to this node's sockets in room (or sid) `to`, collecting acks."""
    socketio.emit(event, payload, to=to, callback=_ack_callback(event, payload), ignore_queue=True)


def emit_delivery_request(data: bytes) -> None:
    """One message of the delivery channel: emit each of its deliveries to this node's
    sockets in the payload's session room. Called by the node's message queue
    (web/sockets/message_queue.py), in order with the tokens streamed before it."""
    for delivery in json.loads(data)["deliveries"]:
        payload = delivery["payload"]
        with log_context(session_id=payload["session_id"]):
            emit_with_ack(delivery["event"], payload, to=payload["session_id"])


def replay_unacknowledged(session_id: str, sid: str) -> int:
    """Send the session's unacknowledged assistant messages to one socket."""
    with with_db_session() as db:
        messages = message_queries.unacknowledged_in_session(db, session_id, REPLAY_LIMIT)
    for message in messages:
        event, payload = delivery_event(message)
        emit_with_ack(event, payload, to=sid)
    return len(messages)
