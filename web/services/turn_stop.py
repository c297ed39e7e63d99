"""Stopping the assistant turn of a session (POST /assistant_turn_stop)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from common import llm, metrics
from common.delivery.protocol import StoredReply, delivery_event
from common.delivery.publishing import publish_deliveries
from common.errors import Conflict
from common.queries import messages as message_queries
from common.queries.usage import usage_columns
from common.settings import get_settings
from common.turn_stop import request_stop, stop_before_first_token
from web.extensions import db
from web.services.sessions import get_owned_session

# A running turn reads its stop flag every 0.1 s between chunks: the request waits this
# long for it to store the stopped answer, then answers without its message_pk.
STOP_WAIT_S = 3.0
STOP_POLL_S = 0.05


def stop_turn(user_id: str, session_id: str) -> dict[str, Any]:
    """Stop the turn running or queued in the user's session; the stopped (or, if the
    stop crossed the turn's end, the finished) answer's message_pk.

    Conflict if no turn is running or queued. A turn that has shown no token yet (queued,
    or waiting for the LLM's first token) is ended here, with an empty text, and will show
    none (common/turn_stop.py); a streaming one is asked to stop through its Redis flag,
    and ends itself with what it streamed so far. Either way the unique reply index keeps
    it to one message.
    """
    get_owned_session(user_id, session_id)
    turn = message_queries.newest_turn_of_session(db.session, session_id)
    db.session.rollback()  # each read below sees what the worker committed since
    if turn is None or turn.reply_pk is not None:
        raise Conflict("No assistant turn is running or queued in this session.")
    request_stop(turn.message_pk)
    if stop_before_first_token(turn.message_pk):
        reply_pk = _end_turn_before_its_first_token(session_id, turn.message_pk, turn.message)
        if reply_pk is not None:
            return {"session_id": session_id, "message_pk": reply_pk}
    deadline = time.monotonic() + STOP_WAIT_S
    while True:
        reply_pk = message_queries.reply_pk_of(db.session, turn.message_pk)
        db.session.rollback()
        if reply_pk is not None or time.monotonic() >= deadline:
            return {"session_id": session_id, "message_pk": reply_pk}
        time.sleep(STOP_POLL_S)  # a gevent sleep on a web node


def _end_turn_before_its_first_token(
    session_id: str, user_message_pk: int, asked: dict[str, Any]
) -> int | None:
    """Store and deliver the empty, stopped answer of a turn that showed no token (queued,
    or waiting for the LLM); its pk, or None if a reply was stored first (a worker that
    took the turn saw the stop flag and ended it itself)."""
    usage = llm.Usage(get_settings().llm_model, 0, 0, estimated=False)
    message: dict[str, Any] = {
        "text": "",
        "text_with_tags": "",
        "usage": usage.as_json(),
        "stopped": True,
    }
    if asked.get("user_task_execution_pk") is not None:
        message["user_task_execution_pk"] = asked["user_task_execution_pk"]
    now = datetime.now(UTC)
    reply_pk = message_queries.insert_reply(
        db.session,
        session_id=session_id,
        in_reply_to_pk=user_message_pk,
        message=message,
        event_name="mojo_message",
        now=now,
        usage=usage_columns(usage, duration_ms=0, stopped=True),
        delivery_attempts=1,
        last_delivery_at=now,
    )
    db.session.commit()
    if reply_pk is None:
        return None
    metrics.increment("turns_stopped")
    # Resends, until a client acknowledges it, are the resend sweep's (started by the
    # periodic recovery sweep).
    event, payload = delivery_event(StoredReply(reply_pk, session_id, "mojo_message", message))
    publish_deliveries([(event, payload)])
    metrics.increment("messages_delivered", event=event)
    return reply_pk
