"""common/queries/messages.py, storing a message of the user's side: the one statement
behind PUT /user_message and task runs (STORE_STATEMENT), against the real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from common.models import SYSTEM_SENDER, ChatSession, Message
from web.extensions import db
from web.services import sessions


def _messages_of(session_id: str) -> list[Message]:
    return list(
        db.session.scalars(
            select(Message).where(Message.session_id == session_id).order_by(Message.message_pk)
        )
    )


def _session(session_id: str) -> ChatSession:
    db.session.expire_all()
    return db.session.get(ChatSession, session_id)


def test_a_new_client_message_id_is_stored_with_its_lease(store, session_id, user_id):
    now = datetime.now(UTC)

    row = store(session_id, user_id, "m-1", "Hello there", now=now, lease_s=20)

    assert (row.user_id, row.mode, row.deleted_at) == (user_id, "chat", None)
    [stored] = _messages_of(session_id)
    assert stored.message_pk == row.message_pk
    assert (stored.sender, stored.event_name, stored.client_message_id) == (
        "user",
        "user_message",
        "m-1",
    )
    assert stored.message == {"text": "Hello there", "message_id": "m-1"}
    assert stored.turn_lease_until == now + timedelta(seconds=20)
    assert stored.delivery_attempts == 0


def test_a_repeated_client_message_id_inserts_nothing(store, session_id, user_id):
    first = store(session_id, user_id, "m-1", "Hello")

    again = store(session_id, user_id, "m-1", "Hello again")

    assert first.message_pk is not None
    assert again.message_pk is None
    assert [m.message["text"] for m in _messages_of(session_id)] == ["Hello"]


def test_the_same_client_message_id_in_another_session_is_another_message(
    store, user_id, make_session
):
    first_session, second_session = make_session(user_id), make_session(user_id)

    first = store(first_session, user_id, "m-1")
    second = store(second_session, user_id, "m-1")

    assert None not in (first.message_pk, second.message_pk)
    assert first.message_pk != second.message_pk


def test_another_users_session_is_refused_with_its_owner(store, session_id, user_id, other_user_id):
    row = store(session_id, other_user_id, "m-1")

    assert row.user_id == user_id
    assert row.message_pk is None
    assert _messages_of(session_id) == []


def test_a_deleted_session_is_refused(store, session_id, user_id):
    sessions.delete_session(user_id, session_id)

    row = store(session_id, user_id, "m-1")

    assert row.deleted_at is not None
    assert row.message_pk is None
    assert _messages_of(session_id) == []


def test_a_session_of_another_mode_is_refused_with_its_mode(store, session_id, user_id):
    row = store(session_id, user_id, "m-1", expected_mode="form")

    assert row.mode == "chat"
    assert row.message_pk is None
    assert _messages_of(session_id) == []


def test_an_unknown_session_answers_no_row(store, user_id, connection):
    assert store("no-such-session", user_id, "m-1") is None
    assert connection.scalar(select(func.count()).select_from(Message)) == 0


def test_the_first_user_message_titles_the_session(store, session_id, user_id):
    store(session_id, user_id, "m-1", "Plan my week")
    store(session_id, user_id, "m-2", "And the next one")

    assert _session(session_id).title == "Plan my week"


def test_a_refused_message_neither_titles_nor_dates_the_session(
    store, session_id, user_id, other_user_id
):
    store(session_id, other_user_id, "m-1", "Not yours")

    session = _session(session_id)
    assert (session.title, session.last_message_date) == (None, None)


def test_a_repeated_message_does_not_date_the_session_again(store, session_id, user_id):
    sent_at = datetime.now(UTC)
    store(session_id, user_id, "m-1", now=sent_at)

    store(session_id, user_id, "m-1", now=sent_at + timedelta(minutes=5))

    assert _session(session_id).last_message_date == sent_at


def test_a_stored_message_dates_the_session(store, session_id, user_id):
    sent_at = datetime.now(UTC) + timedelta(seconds=30)

    store(session_id, user_id, "m-1", now=sent_at)

    assert _session(session_id).last_message_date == sent_at


def test_a_system_message_does_not_title_the_session(store, user_id, make_execution, connection):
    execution = make_execution(user_id)

    row = store(
        execution["session_id"],
        user_id,
        "run",
        "Task inputs: ...",
        sender=SYSTEM_SENDER,
        expected_mode="form",
    )

    assert row.message_pk is not None
    session = _session(execution["session_id"])
    assert session.title is None
    assert session.last_message_date is not None
