"""User messages in, conversation history out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, Literal

import kombu.exceptions
import redis.exceptions
from sqlalchemy import (
    select,
)

from common.db import autocommit_connection
from common.delivery.acks import record_acks
from common.delivery.emitter import emit_to_session
from common.errors import PayloadTooLarge, ServiceUnavailable
from common.llm.context_window import REPLY_PRIMING_TOKENS, TokenCounter
from common.models import MOJO_SENDER, USER_SENDER, Message
from common.prompts import render_prompt
from common.queries import messages as message_queries
from common.settings import get_settings
from common.user_time import prompt_dates
from web.extensions import db, socketio
from web.services.execution_start import execution_for_session, mark_started
from web.services.sessions import check_owned, get_owned_session
from web.services.turns import enqueue_assistant_turn
from web.services.usage import check_daily_token_limit

TITLE_LENGTH = 60


def message_payload(message: Message) -> dict[str, Any]:
    """The `message` object clients see, always carrying its message_pk."""
    return {**message.message, "message_pk": message.message_pk}


def receive_user_message(
    user_id: str, session_id: str, message_id: str, text: str
) -> dict[str, Any]:
    """Store a user message and start the assistant turn that answers it.

    In a task execution's session the message belongs to the execution (its
    first message starts it). A user over the daily token limit gets TooManyRequests
    and nothing is stored.
    """
    check_fits_context_window(text)
    check_daily_token_limit(user_id)
    stored = store_message_and_start_turn(user_id, session_id, message_id, text)
    if stored is not None:
        return stored
    # Not a chat: a task execution's session (modes never change), tried second because
    # it costs two more queries.
    extra: dict[str, Any] = {}
    execution = execution_for_session(session_id)
    if execution is not None:
        mark_started(execution)
        extra["user_task_execution_pk"] = execution.user_task_execution_pk
    stored = store_message_and_start_turn(
        user_id, session_id, message_id, text, USER_SENDER, extra, mode="form"
    )
    if stored is None:
        raise RuntimeError(f"session {session_id} is neither a chat nor a form")
    return stored


@lru_cache(maxsize=1)
def _system_prompt_tokens() -> int:
    """What the chat system prompt takes of the window (its dates and a long name)."""
    system = render_prompt("chat_system", user_name="x" * 64, language_code="en", **prompt_dates(0))
    return TokenCounter(get_settings().llm_model).count_message({"content": system})


def max_message_tokens() -> int:
    """The longest user message that fits the model's window with the system prompt and
    the answer's room, and no history at all."""
    return max(
        0,
        get_settings().prompt_budget_tokens - _system_prompt_tokens() - REPLY_PRIMING_TOKENS,
    )


def check_fits_context_window(text: str) -> None:
    """PayloadTooLarge if `text` could never be answered: it does not fit the model's
    context window even alone. Checked before anything is stored."""
    limit = max_message_tokens()
    tokens = TokenCounter(get_settings().llm_model).count_message({"content": text})
    if tokens > limit:
        raise PayloadTooLarge(
            f"The message is too long for the model: about {tokens} tokens, "
            f"and at most {limit} fit in its context window.",
            extra={"tokens": tokens, "limit": limit},
        )


def store_message_and_start_turn(
    user_id: str,
    session_id: str,
    message_id: str,
    text: str,
    sender: str = USER_SENDER,
    extra: dict[str, Any] | None = None,
    mode: str = "chat",
) -> dict[str, Any] | None:
    """Store a message of the user's side in the user's session and queue the turn
    that answers it; None (nothing stored) if the session is not in `mode`.

    NotFound or Forbidden as `check_owned` says. The same client `message_id` in a
    session returns the stored message and starts no second turn; a unique index
    decides, so two concurrent requests cannot both insert.
    """
    now = datetime.now(UTC)
    payload = {"text": text, "message_id": message_id, **(extra or {})}
    # One statement that commits on its own: no BEGIN and COMMIT round trips.
    with autocommit_connection() as connection:
        row = message_queries.store_user_side_message(
            connection,
            session_id=session_id,
            owner_id=user_id,
            expected_mode=mode,
            sender=sender,
            client_message_id=message_id,
            payload=payload,
            now=now,
            lease_until=now + timedelta(seconds=get_settings().turn_lease_s),
            new_title=text.strip()[:TITLE_LENGTH] or None,
        )
    check_owned(row, user_id, session_id)
    if row.mode != mode:
        return None  # nothing was written
    message_pk = row.message_pk
    if message_pk is None:
        existing = message_queries.find_by_client_id(db.session, session_id, message_id)
        if existing is None:
            # The first request took its message back (the broker was down).
            raise ServiceUnavailable("The message broker is unavailable; try again.")
        return message_payload(existing)

    try:
        enqueue_assistant_turn(message_pk)
    except (kombu.exceptions.OperationalError, redis.exceptions.RedisError) as exc:
        # Nothing half-written: without a turn the message would never be
        # answered, so take it back and let the client retry.
        message_queries.delete_message(db.session, message_pk)
        db.session.commit()
        raise ServiceUnavailable(
            "The message broker is unavailable; the message was not stored. Try again."
        ) from exc

    # Published by a background task: the response does not wait for this Redis round trip.
    socketio.start_background_task(
        emit_to_session, "user_message_reception", {"success": True}, session_id
    )
    # What was stored, as message_payload(stored row) would read it back.
    return {**payload, "message_pk": message_pk}


def _count_as_received(messages: list[Message]) -> None:
    """Assistant messages a client just read in the history count as acknowledged: the
    replay on start_session and the resends would otherwise put a second copy in front of
    the user who just read them (the Mojodex web app reads the history, then joins the
    session, and cannot tell the copy from a new message). A client that was away and
    reads no history still gets them at once on joining."""
    unacknowledged = [
        m.message_pk
        for m in messages
        if m.sender == MOJO_SENDER and m.acknowledged_at is None and m.in_error_state is None
    ]
    if unacknowledged:
        record_acks(unacknowledged)


def list_messages(
    user_id: str,
    session_id: str,
    n_messages: int,
    offset: int,
    offset_direction: Literal["older", "newer"],
    user_task_execution_pk: int | None = None,
) -> dict[str, Any]:
    """A page of the session's messages, newest first (as Mojodex answers).

    "older" skips `offset` messages from the newest; "newer" skips `offset`
    from the oldest.
    """
    get_owned_session(user_id, session_id)
    query = select(Message).where(Message.session_id == session_id)
    if user_task_execution_pk is not None:
        query = query.where(
            Message.message["user_task_execution_pk"].as_integer() == user_task_execution_pk
        )
    if offset_direction == "older":
        query = query.order_by(Message.message_date.desc(), Message.message_pk.desc())
    else:
        query = query.order_by(Message.message_date.asc(), Message.message_pk.asc())
    messages = list(db.session.scalars(query.offset(offset).limit(n_messages)).all())
    if offset_direction == "newer":
        messages.reverse()
    _count_as_received(messages)
    return {
        "messages": [
            {
                "message_pk": m.message_pk,
                "sender": m.sender,
                "message": message_payload(m),
                "audio": False,
                "in_error_state": m.in_error_state is not None,
                "message_date": m.message_date.isoformat(),
            }
            for m in messages
        ]
    }
