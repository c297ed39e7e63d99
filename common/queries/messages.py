"""Statements on messages (and the session rows they touch), for the web node's PUT
/user_message, a turn's claim and reply, delivery, resends and recovery.

The hot ones are SQLAlchemy Core statements built once at import: only their parameters
change per call, so SQLAlchemy neither rebuilds them nor recomputes their cache keys, and
each is one round trip (docs/performance.md, "Prebuilt statements"). Their parameters are
named unlike any column: SQLAlchemy takes a parameter named for a column as a value to set.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    literal_column,
    or_,
    select,
    true,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import aliased

from common.models import (
    MOJO_SENDER,
    SYSTEM_SENDER,
    USER_SENDER,
    ChatSession,
    Message,
    User,
    awaiting_ack,
)
from common.queries.usage import insert_turn_usage_from

_messages = Message.__table__
_sessions = ChatSession.__table__
_users = User.__table__
_replies = _messages.alias("reply")

# A turn answers a user message, or the inputs of a task run (a system message).
ANSWERABLE_SENDERS = (USER_SENDER, SYSTEM_SENDER)
# How many earlier messages the claim reads with the turn (one round trip); a turn whose
# window holds them all reads older ones (`older_history`).
HISTORY_LIMIT = 50


# --- Storing a message of the user's side (PUT /user_message, task runs) -------------


def _build_store_statement() -> Select[Any]:
    """Store a message of the user's side in one statement.

    It reads the session (its owner, mode and deletion), inserts the message only if the
    session is the user's, not deleted and in the expected mode (`:expected_mode`), and,
    when the message was inserted (not a repeated client message_id), dates the session
    and titles it if `:sets_title` and it has no title yet. It answers one row (the
    session's user_id, mode, deleted_at, and the new message_pk or NULL), or none for
    an unknown session.
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


def store_user_side_message(
    connection: Connection,
    *,
    session_id: str,
    owner_id: str,
    expected_mode: str,
    sender: str,
    client_message_id: str,
    payload: dict[str, Any],
    now: datetime,
    lease_until: datetime,
    new_title: str | None,
) -> Row | None:
    """Run STORE_STATEMENT: the session's (user_id, mode, deleted_at, message_pk), where
    message_pk is None if nothing was inserted; None for an unknown session. The first
    user message titles an untitled session with `new_title`."""
    return connection.execute(
        STORE_STATEMENT,
        {
            "sid": session_id,
            "owner_id": owner_id,
            "expected_mode": expected_mode,
            "from_sender": sender,
            "client_id": client_message_id,
            "payload": payload,
            "now": now,
            "lease_until": lease_until,
            "sets_title": sender == USER_SENDER,
            "new_title": new_title,
        },
    ).first()


def find_by_client_id(db: DbSession, session_id: str, client_message_id: str) -> Message | None:
    """The message a client already sent with this message_id in the session."""
    return db.scalar(
        select(Message).where(
            Message.session_id == session_id, Message.client_message_id == client_message_id
        )
    )


def delete_message(db: DbSession, message_pk: int) -> None:
    """Take a message back (the caller commits)."""
    db.execute(delete(Message).where(Message.message_pk == message_pk))


# --- A turn's claim, with the conversation it answers ---------------------------------

# Take (or keep) the lease on a user message, unless it is answered or held by another
# live run; it answers what the prompt needs of the session and its user, in the same
# round trip.
CLAIM_STATEMENT = (
    update(_messages)
    .where(
        _messages.c.message_pk == bindparam("user_message_pk"),
        _sessions.c.session_id == _messages.c.session_id,
        _users.c.user_id == _sessions.c.user_id,
        _messages.c.sender.in_(ANSWERABLE_SENDERS),
        ~exists().where(_replies.c.in_reply_to_pk == _messages.c.message_pk),
        or_(
            _messages.c.turn_task_id.is_(None),
            _messages.c.turn_task_id == bindparam("task_id"),
            _messages.c.turn_lease_until < bindparam("now"),
        ),
    )
    .values(turn_task_id=bindparam("new_task_id"), turn_lease_until=bindparam("lease_until"))
    .returning(
        _messages.c.session_id,
        _sessions.c.mode,
        _users.c.name,
        _users.c.language_code,
        _users.c.timezone_offset,
    )
)

# The claim and the conversation up to the message answered (newest first) in one round
# trip: one row per message of the history, each with the claim's answer; no row if the
# claim took nothing (docs/performance.md, "Claim with history"). The history is read in
# the statement's snapshot, from before the claim's update, which changes no message's text.
_claimed = CLAIM_STATEMENT.cte("claimed")
_history = (
    select(
        _messages.c.sender,
        _messages.c.message,
        _messages.c.message_date,
        _messages.c.message_pk,
    )
    .where(
        _messages.c.session_id == _claimed.c.session_id,
        _messages.c.message_pk <= bindparam("user_message_pk"),
        _messages.c.in_error_state.is_(None),
    )
    .order_by(_messages.c.message_date.desc(), _messages.c.message_pk.desc())
    .limit(HISTORY_LIMIT)
    .lateral("history")
)
CLAIM_WITH_HISTORY_STATEMENT = (
    select(
        _claimed.c.session_id,
        _claimed.c.mode,
        _claimed.c.name,
        _claimed.c.language_code,
        _claimed.c.timezone_offset,
        _history.c.sender,
        _history.c.message,
        _history.c.message_date,
        _history.c.message_pk,
    )
    .select_from(_claimed.outerjoin(_history, true()))
    .order_by(_history.c.message_date.desc(), _history.c.message_pk.desc())
)


def _claim_params(
    user_message_pk: int, task_id: str, now: datetime, lease_until: datetime
) -> dict[str, Any]:
    return {
        "user_message_pk": user_message_pk,
        "task_id": task_id,
        "now": now,
        "new_task_id": task_id,
        "lease_until": lease_until,
    }


def claim_turn(
    connection: Connection,
    user_message_pk: int,
    task_id: str,
    now: datetime,
    lease_until: datetime,
) -> Row | None:
    """Take (or keep) the turn's lease: the (session_id, mode, name, language_code,
    timezone_offset) of the claimed message, or None if it is answered or held by another
    live run."""
    params = _claim_params(user_message_pk, task_id, now, lease_until)
    return connection.execute(CLAIM_STATEMENT, params).first()


def claim_turn_with_history(
    connection: Connection,
    user_message_pk: int,
    task_id: str,
    now: datetime,
    lease_until: datetime,
) -> list[Row]:
    """`claim_turn` and the conversation, in one round trip: rows of (session_id, mode,
    name, language_code, timezone_offset, sender, message, message_date, message_pk),
    newest message first, at most HISTORY_LIMIT; no row if the claim took nothing."""
    params = _claim_params(user_message_pk, task_id, now, lease_until)
    return list(connection.execute(CLAIM_WITH_HISTORY_STATEMENT, params).all())


# Older history, for a turn whose newest HISTORY_LIMIT messages all fit the model's window:
# the page of a session's messages before (message_date, message_pk), newest first, read by
# ix_md_message_session_date.
OLDER_HISTORY_STATEMENT = (
    select(
        _messages.c.sender,
        _messages.c.message,
        _messages.c.message_date,
        _messages.c.message_pk,
    )
    .where(
        _messages.c.session_id == bindparam("session_id"),
        tuple_(_messages.c.message_date, _messages.c.message_pk)
        < tuple_(bindparam("before_date"), bindparam("before_pk")),
        _messages.c.in_error_state.is_(None),
    )
    .order_by(_messages.c.message_date.desc(), _messages.c.message_pk.desc())
    .limit(bindparam("page_size"))
)


def older_history(
    connection: Connection,
    session_id: str,
    before_date: datetime,
    before_pk: int,
    page_size: int,
) -> list[Row]:
    """Up to `page_size` messages of the session older than (before_date, before_pk), as
    (sender, message, message_date, message_pk) rows, newest first; messages in error are
    left out, as in the claim's history."""
    params = {
        "session_id": session_id,
        "before_date": before_date,
        "before_pk": before_pk,
        "page_size": page_size,
    }
    return list(connection.execute(OLDER_HISTORY_STATEMENT, params).all())


# --- A turn's reply -------------------------------------------------------------------


def insert_reply(
    connection: Connection | DbSession,
    *,
    session_id: str,
    in_reply_to_pk: int,
    message: dict[str, Any],
    event_name: str,
    now: datetime,
    usage: dict[str, Any] | None = None,
    **columns: Any,
) -> int | None:
    """Insert the assistant's reply to a message unless one exists (a unique index
    decides), and date the session, in one statement; the reply's pk if this call
    stored it, else None. `columns` sets more of the reply's columns; `usage` (the
    columns of common/queries/usage.py's `usage_columns`) records what the turn cost,
    in the same statement, only if the reply is inserted."""
    stored = (
        insert(_messages)
        .values(
            session_id=session_id,
            sender=MOJO_SENDER,
            event_name=event_name,
            message=message,
            in_reply_to_pk=in_reply_to_pk,
            message_date=now,
            creation_date=now,
            **columns,
        )
        .on_conflict_do_nothing(
            index_elements=[_messages.c.in_reply_to_pk],
            index_where=_messages.c.in_reply_to_pk.isnot(None),
        )
        .returning(_messages.c.message_pk)
        .cte("stored")
    )
    touched = (
        update(_sessions)
        .where(_sessions.c.session_id == session_id)
        .values(last_message_date=now)
        .cte("touched")
    )
    statement = select(stored.c.message_pk).add_cte(touched)
    if usage is not None:
        statement = statement.add_cte(insert_turn_usage_from(stored, session_id, usage, now))
    return connection.execute(statement).scalar()


def newest_turn_of_session(db: DbSession, session_id: str) -> Row | None:
    """The session's newest message of the user's side, with the pk of its reply (None
    while its turn is queued or running): (message_pk, message, reply_pk); None if the
    session has none."""
    reply = aliased(Message)
    return db.execute(
        select(
            Message.message_pk,
            Message.message,
            reply.message_pk.label("reply_pk"),
        )
        .outerjoin(reply, reply.in_reply_to_pk == Message.message_pk)
        .where(Message.session_id == session_id, Message.sender.in_(ANSWERABLE_SENDERS))
        .order_by(Message.message_pk.desc())
        .limit(1)
    ).first()


def reply_pk_of(db: DbSession, user_message_pk: int) -> int | None:
    """The pk of the reply to a message, if it is stored."""
    return db.scalar(select(Message.message_pk).where(Message.in_reply_to_pk == user_message_pk))


def set_message_body(db: DbSession, message_pk: int, message: dict[str, Any]) -> None:
    """Replace a stored message's JSON body (the caller commits)."""
    db.execute(
        update(_messages).where(_messages.c.message_pk == message_pk).values(message=message)
    )


# --- Delivery, resends and recovery ---------------------------------------------------


def count_first_delivery(db: DbSession, message_pk: int, now: datetime) -> Message | None:
    """Count the first delivery of a message never delivered and still unacknowledged;
    the message, or None if it was delivered or acknowledged already."""
    return db.scalar(
        update(Message)
        .where(Message.message_pk == message_pk, Message.delivery_attempts == 0, awaiting_ack())
        .values(delivery_attempts=1, last_delivery_at=now)
        .returning(Message)
    )


def resendable(now: datetime, max_deliveries: int, window: timedelta) -> ColumnElement[bool]:
    """Delivered at least once, tries left, last delivery within the recovery window
    (older ones are left to the replay on joining the session)."""
    return and_(
        awaiting_ack(),
        Message.delivery_attempts >= 1,
        Message.delivery_attempts < max_deliveries,
        Message.last_delivery_at > now - window,
    )


def claim_due_resends(
    db: DbSession,
    now: datetime,
    *,
    interval: timedelta,
    max_deliveries: int,
    window: timedelta,
    limit: int,
) -> list[Row]:
    """Count one more delivery of up to `limit` messages last delivered `interval` ago,
    oldest first, skipping rows another sweep holds; the columns a delivery needs
    (message_pk, session_id, event_name, message, delivery_attempts), not ORM objects."""
    due = and_(resendable(now, max_deliveries, window), Message.last_delivery_at <= now - interval)
    # A CTE: PostgreSQL runs it once. As an IN (subquery), the planner may run the locking
    # subquery again for every row and claim far more than `limit` (docs/performance.md,
    # "Resend sweep vs countdown per message").
    picked = (
        select(Message.message_pk)
        .where(due)
        .order_by(Message.last_delivery_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("picked")
    )
    return list(
        db.execute(
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
    )


def oldest_resendable_delivery(
    db: DbSession, now: datetime, max_deliveries: int, window: timedelta
) -> datetime | None:
    """When the message that will be due first was last delivered; None if none awaits."""
    return db.scalar(
        select(func.min(Message.last_delivery_at)).where(resendable(now, max_deliveries, window))
    )


def unacknowledged_in_session(db: DbSession, session_id: str, limit: int) -> Sequence[Message]:
    """The session's assistant messages awaiting an ack, oldest first."""
    return db.scalars(
        select(Message)
        .where(Message.session_id == session_id, awaiting_ack())
        .order_by(Message.message_pk)
        .limit(limit)
    ).all()


def never_delivered(
    db: DbSession, created_after: datetime, created_before: datetime, limit: int
) -> Sequence[int]:
    """Assistant messages stored in the window but never delivered (a worker that died
    between storing and publishing)."""
    return db.scalars(
        select(Message.message_pk)
        .where(
            awaiting_ack(),
            Message.delivery_attempts == 0,
            Message.creation_date < created_before,
            Message.creation_date > created_after,
        )
        .limit(limit)
    ).all()


def unanswered_turns(
    db: DbSession, created_after: datetime, now: datetime, limit: int
) -> Sequence[int]:
    """Messages a turn answers (a user's, or a task run's inputs), of the window, with no
    reply and no live lease: turns that were lost (a worker killed mid-turn, a queued
    task dropped by a Redis restart)."""
    reply = aliased(Message)
    return db.scalars(
        select(Message.message_pk)
        .where(
            Message.sender.in_(ANSWERABLE_SENDERS),
            Message.creation_date > created_after,
            or_(Message.turn_lease_until.is_(None), Message.turn_lease_until < now),
            ~exists().where(reply.in_reply_to_pk == Message.message_pk),
        )
        .limit(limit)
    ).all()
