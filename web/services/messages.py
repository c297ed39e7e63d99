"""User messages in, conversation history out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import kombu.exceptions
import redis.exceptions
from sqlalchemy import (
    Select,
    and_,
    bindparam,
    case,
    delete,
    exists,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import insert

from common.db import autocommit_connection
from common.emitter import emit_to_session
from common.errors import ServiceUnavailable
from common.models import USER_SENDER, Message, Session
from common.settings import get_settings
from web.extensions import db, socketio
from web.services.execution_start import execution_for_session, mark_started
from web.services.sessions import check_owned, get_owned_session
from web.services.turns import enqueue_assistant_turn

TITLE_LENGTH = 60


def message_payload(message: Message) -> dict[str, Any]:
    """The `message` object clients see, always carrying its message_pk."""
    return {**message.message, "message_pk": message.message_pk}


# Tables, for the Core statement below.
_messages, _sessions = Message.__table__, Session.__table__


def _build_store_statement() -> Select[Any]:
    """Store a message of the user's side in one statement, one round trip.

    It reads the session (its owner, mode and deletion), inserts the message only if the
    session is the user's, not deleted and in the expected mode (`:expected_mode`), and,
    when the message was inserted (not a repeated client message_id), dates the session
    and titles it if `:sets_title` and it has no title yet. It answers one row (the
    session's user_id, mode, deleted_at, and the new message_pk or NULL), or none for
    an unknown session.

    Its parameters are named unlike any column: SQLAlchemy takes a parameter named
    for a column as a value to set in the UPDATE.

    Why one prebuilt statement: PUT /user_message had a round trip for the ownership
    check, another for the insert, each in a transaction (BEGIN and COMMIT), and
    SQLAlchemy rebuilt and re-keyed both statements each time: the ownership check
    alone was 12% of the web node's samples at saturation (py-spy in `make bench`).
    Built once, only its parameters change.
    """
    owner = (
        select(_sessions.c.user_id, _sessions.c.mode, _sessions.c.deleted_at)
        .where(_sessions.c.session_id == bindparam("sid"))
        .cte("owner")
    )
    now = bindparam("now", type_=_messages.c.message_date.type)
    accepted = select(
        bindparam("sid"),
        bindparam("from_sender"),
        literal_column("'user_message'"),
        bindparam("client_id"),
        bindparam("payload", type_=_messages.c.message.type),
        now,
        now,
        # A queued turn counts as held until then; if no worker takes it by that
        # time, the recovery sweep queues it again.
        bindparam("lease_until", type_=_messages.c.turn_lease_until.type),
        # Said, not left to the column's Python-side default: in an INSERT ... SELECT,
        # SQLAlchemy would add it as a parameter that a prebuilt statement lacks.
        literal_column("0"),
    ).where(
        owner.c.user_id == bindparam("owner_id"),
        owner.c.deleted_at.is_(None),
        owner.c.mode == bindparam("expected_mode"),
    )
    stored = (
        insert(_messages)
        .from_select(
            [
                "session_id",
                "sender",
                "event_name",
                "client_message_id",
                "message",
                "message_date",
                "creation_date",
                "turn_lease_until",
                "delivery_attempts",
            ],
            accepted,
        )
        .on_conflict_do_nothing(
            index_elements=[_messages.c.session_id, _messages.c.client_message_id],
            index_where=_messages.c.client_message_id.isnot(None),
        )
        .returning(_messages.c.message_pk)
        .cte("stored")
    )
    untitled = or_(_sessions.c.title.is_(None), _sessions.c.title == "")
    touched = (
        update(_sessions)
        .where(_sessions.c.session_id == bindparam("sid"), exists(select(stored.c.message_pk)))
        .values(
            last_message_date=now,
            title=case(
                (and_(bindparam("sets_title"), untitled), bindparam("new_title")),
                else_=_sessions.c.title,
            ),
        )
        .cte("touched")
    )
    return select(
        owner.c.user_id,
        owner.c.mode,
        owner.c.deleted_at,
        select(stored.c.message_pk).scalar_subquery().label("message_pk"),
    ).add_cte(touched)


STORE_STATEMENT = _build_store_statement()


def receive_user_message(
    user_id: str, session_id: str, message_id: str, text: str
) -> dict[str, Any]:
    """Store a user message and start the assistant turn that answers it.

    In a task execution's session the message belongs to the execution (its
    first message starts it).
    """
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
        row = connection.execute(
            STORE_STATEMENT,
            {
                "sid": session_id,
                "owner_id": user_id,
                "expected_mode": mode,
                "from_sender": sender,
                "client_id": message_id,
                "payload": payload,
                "now": now,
                "lease_until": now + timedelta(seconds=get_settings().turn_lease_s),
                # The first user message titles an untitled session.
                "sets_title": sender == USER_SENDER,
                "new_title": text.strip()[:TITLE_LENGTH] or None,
            },
        ).first()
    check_owned(row, user_id, session_id)
    if row.mode != mode:
        return None  # nothing was written
    message_pk = row.message_pk
    if message_pk is None:
        existing = db.session.scalar(
            select(Message).where(
                Message.session_id == session_id, Message.client_message_id == message_id
            )
        )
        if existing is None:
            # The first request took its message back (the broker was down).
            raise ServiceUnavailable("The message broker is unavailable; try again.")
        return message_payload(existing)

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

    # Published by a background task: the response does not wait for this Redis round trip.
    socketio.start_background_task(
        emit_to_session, "user_message_reception", {"success": True}, session_id
    )
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
