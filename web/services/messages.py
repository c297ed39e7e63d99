"""User messages in, conversation history out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import kombu.exceptions
import redis.exceptions
from sqlalchemy import case, delete, exists, or_, select, update
from sqlalchemy.dialects.postgresql import insert

from common.emitter import emit_to_session
from common.errors import ServiceUnavailable
from common.models import USER_SENDER, Message, Session
from common.settings import get_settings
from web.extensions import db
from web.services.execution_start import execution_for_session, mark_started
from web.services.sessions import get_owned_session, owned_session_mode
from web.services.turns import enqueue_assistant_turn

TITLE_LENGTH = 60


def message_payload(message: Message) -> dict[str, Any]:
    """The `message` object clients see, always carrying its message_pk."""
    return {**message.message, "message_pk": message.message_pk}


def receive_user_message(
    user_id: str, session_id: str, message_id: str, text: str
) -> dict[str, Any]:
    """Store a user message and start the assistant turn that answers it.

    In a task execution's session the message belongs to the execution (its
    first message starts it).
    """
    mode = owned_session_mode(user_id, session_id)
    extra: dict[str, Any] = {}
    if mode == "form":
        execution = execution_for_session(session_id)
        if execution is not None:
            mark_started(execution)
            extra["user_task_execution_pk"] = execution.user_task_execution_pk
    return store_message_and_start_turn(session_id, message_id, text, USER_SENDER, extra)


def store_message_and_start_turn(
    session_id: str,
    message_id: str,
    text: str,
    sender: str = USER_SENDER,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Store a message of the user's side and queue the turn that answers it.

    The same client `message_id` in a session returns the stored message and
    starts no second turn; a unique index decides, so two concurrent requests
    cannot both insert.
    """
    now = datetime.now(UTC)
    payload = {"text": text, "message_id": message_id, **(extra or {})}
    messages, sessions = Message.__table__, Session.__table__
    stored = (
        insert(messages)
        .values(
            session_id=session_id,
            sender=sender,
            event_name="user_message",
            client_message_id=message_id,
            message=payload,
            message_date=now,
            creation_date=now,
            # A queued turn counts as held until then; if no worker takes it
            # by that time, the recovery sweep queues it again.
            turn_lease_until=now + timedelta(seconds=get_settings().turn_lease_s),
        )
        .on_conflict_do_nothing(
            index_elements=[messages.c.session_id, messages.c.client_message_id],
            index_where=messages.c.client_message_id.isnot(None),
        )
        .returning(messages.c.message_pk)
        .cte("stored")
    )
    values: dict[str, Any] = {"last_message_date": now}
    if sender == USER_SENDER:
        # The first user message titles an untitled session.
        values["title"] = case(
            (
                or_(sessions.c.title.is_(None), sessions.c.title == ""),
                text.strip()[:TITLE_LENGTH] or None,
            ),
            else_=sessions.c.title,
        )
    touched = (
        update(sessions)
        # Only when the message was stored (not a repeated message_id).
        .where(sessions.c.session_id == session_id, exists(select(stored.c.message_pk)))
        .values(**values)
        .cte("touched")
    )
    # One statement, one round trip: the insert, and the session's date and title.
    # Core tables, no ORM entity loaded or flushed: loading the session row, flushing
    # it, and reading back the message just written cost about 10% of the web node's
    # CPU per PUT /user_message (see bench/results/), and each round trip waits for
    # PostgreSQL to be scheduled on a busy machine.
    message_pk = db.session.scalar(select(stored.c.message_pk).add_cte(touched))
    if message_pk is None:
        db.session.rollback()
        existing = db.session.scalar(
            select(Message).where(
                Message.session_id == session_id, Message.client_message_id == message_id
            )
        )
        if existing is None:
            # The first request took its message back (the broker was down).
            raise ServiceUnavailable("The message broker is unavailable; try again.")
        return message_payload(existing)
    db.session.commit()

    try:
        enqueue_assistant_turn(message_pk)
    except (kombu.exceptions.OperationalError, redis.exceptions.RedisError) as exc:
        # Nothing half-written: without a turn the message would never be
        # answered, so take it back and let the client retry.
        db.session.execute(delete(Message).where(Message.message_pk == message_pk))
        db.session.commit()
        raise ServiceUnavailable(
            "The message broker is unavailable; the message was not stored. Try again."
        ) from exc

    emit_to_session("user_message_reception", {"success": True}, session_id)
    # What was stored, as message_payload(stored row) would read it back.
    return {**payload, "message_pk": message_pk}


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
