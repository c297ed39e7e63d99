"""common/queries/messages.py, a turn's claim and reply: the lease on a user message
(claim_turn), the claim with the conversation it answers (claim_turn_with_history), and
the reply (insert_reply), against the real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update

from common.models import MOJO_SENDER, ChatSession, Message
from common.queries import messages as message_queries
from web.extensions import db

LEASE = timedelta(seconds=20)


def _claim(connection, message_pk, task_id, now=None):
    now = now or datetime.now(UTC)
    return message_queries.claim_turn(connection, message_pk, task_id, now, now + LEASE)


def _claim_with_history(connection, message_pk, task_id="task-1", now=None):
    now = now or datetime.now(UTC)
    return message_queries.claim_turn_with_history(
        connection, message_pk, task_id, now, now + LEASE
    )


def _reply(connection, session_id, message_pk, text="Sure.", now=None):
    return message_queries.insert_reply(
        connection,
        session_id=session_id,
        in_reply_to_pk=message_pk,
        message={"text": text},
        event_name="mojo_message",
        now=now or datetime.now(UTC),
    )


def _lease_of(connection, message_pk):
    return connection.execute(
        select(Message.turn_task_id, Message.turn_lease_until).where(
            Message.message_pk == message_pk
        )
    ).one()


def _free(connection, message_pk):
    """A queued message no task holds yet (a web node stores it with a lease and no
    task id)."""
    connection.execute(
        update(Message).where(Message.message_pk == message_pk).values(turn_task_id=None)
    )


def test_a_free_message_is_claimed_with_what_the_prompt_needs(
    connection, store, session_id, user_id
):
    message_pk = store(session_id, user_id, "m-1").message_pk
    now = datetime.now(UTC)

    claimed = _claim(connection, message_pk, "task-1", now)

    assert tuple(claimed) == (session_id, "chat", "Ada", "en", None)
    assert tuple(_lease_of(connection, message_pk)) == ("task-1", now + LEASE)


def test_a_message_held_by_another_live_task_is_not_claimed(connection, store, session_id, user_id):
    message_pk = store(session_id, user_id, "m-1").message_pk
    first = _claim(connection, message_pk, "task-1")

    second = _claim(connection, message_pk, "task-2")

    assert first is not None
    assert second is None
    assert _lease_of(connection, message_pk).turn_task_id == "task-1"


def test_a_task_keeps_renewing_its_own_lease(connection, store, session_id, user_id):
    message_pk = store(session_id, user_id, "m-1").message_pk
    _claim(connection, message_pk, "task-1")
    later = datetime.now(UTC) + timedelta(seconds=10)

    renewed = _claim(connection, message_pk, "task-1", later)

    assert renewed is not None
    assert _lease_of(connection, message_pk).turn_lease_until == later + LEASE


def test_a_message_whose_lease_ran_out_is_claimed_by_another_task(
    connection, store, session_id, user_id
):
    message_pk = store(session_id, user_id, "m-1").message_pk
    _claim(connection, message_pk, "task-1")
    after_the_lease = datetime.now(UTC) + LEASE + timedelta(seconds=1)

    taken = _claim(connection, message_pk, "task-2", after_the_lease)

    assert taken is not None
    assert _lease_of(connection, message_pk).turn_task_id == "task-2"


def test_an_answered_message_is_not_claimed_even_by_its_own_task(
    connection, store, session_id, user_id
):
    message_pk = store(session_id, user_id, "m-1").message_pk
    _claim(connection, message_pk, "task-1")
    _reply(connection, session_id, message_pk)

    assert _claim(connection, message_pk, "task-1") is None


def test_an_assistant_message_is_never_claimed(connection, store, session_id, user_id):
    message_pk = store(session_id, user_id, "m-1").message_pk
    reply_pk = _reply(connection, session_id, message_pk)

    assert _claim(connection, reply_pk, "task-1") is None


def test_an_unknown_message_is_not_claimed(connection):
    assert _claim(connection, 999_999, "task-1") is None


def test_the_claim_reads_the_conversation_newest_first_up_to_the_message_answered(
    connection, store, session_id, user_id
):
    start = datetime.now(UTC)
    first = store(session_id, user_id, "m-1", "first", now=start).message_pk
    _reply(connection, session_id, first, "first answer", now=start + timedelta(seconds=1))
    second = store(session_id, user_id, "m-2", "second", now=start + timedelta(seconds=2))
    # Sent while the second was being answered: not part of that turn's conversation.
    store(session_id, user_id, "m-3", "third", now=start + timedelta(seconds=3))
    _free(connection, second.message_pk)

    rows = _claim_with_history(connection, second.message_pk)

    assert [(row.sender, row.message["text"]) for row in rows] == [
        ("user", "second"),
        (MOJO_SENDER, "first answer"),
        ("user", "first"),
    ]
    assert {(row.session_id, row.mode, row.name, row.language_code) for row in rows} == {
        (session_id, "chat", "Ada", "en")
    }


def test_the_claimed_conversation_leaves_out_messages_in_error(
    connection, store, session_id, user_id
):
    start = datetime.now(UTC)
    failed = store(session_id, user_id, "m-1", "failed", now=start).message_pk
    connection.execute(
        update(Message).where(Message.message_pk == failed).values(in_error_state=start)
    )
    asked = store(session_id, user_id, "m-2", "asked", now=start + timedelta(seconds=1))

    rows = _claim_with_history(connection, asked.message_pk)

    assert [row.message["text"] for row in rows] == ["asked"]


def test_the_claimed_conversation_holds_at_most_the_history_limit(
    connection, store, session_id, user_id
):
    start = datetime.now(UTC)
    total = message_queries.HISTORY_LIMIT + 5
    for n in range(total):
        last = store(
            session_id, user_id, f"m-{n}", f"message {n}", now=start + timedelta(seconds=n)
        )

    rows = _claim_with_history(connection, last.message_pk)

    assert len(rows) == message_queries.HISTORY_LIMIT
    assert rows[0].message["text"] == f"message {total - 1}"
    assert rows[-1].message["text"] == f"message {total - message_queries.HISTORY_LIMIT}"


def test_a_failed_claim_with_history_answers_no_row(connection, store, session_id, user_id):
    message_pk = store(session_id, user_id, "m-1").message_pk
    _claim_with_history(connection, message_pk, "task-1")

    assert _claim_with_history(connection, message_pk, "task-2") == []


def test_the_claim_with_history_takes_the_lease(connection, store, session_id, user_id):
    message_pk = store(session_id, user_id, "m-1").message_pk
    _free(connection, message_pk)

    _claim_with_history(connection, message_pk, "task-1")

    assert _lease_of(connection, message_pk).turn_task_id == "task-1"


def test_only_the_first_reply_to_a_message_is_stored(connection, store, session_id, user_id):
    message_pk = store(session_id, user_id, "m-1").message_pk

    first = _reply(connection, session_id, message_pk, "one")
    second = _reply(connection, session_id, message_pk, "two")

    assert first is not None
    assert second is None
    replies = connection.execute(
        select(Message.message).where(Message.in_reply_to_pk == message_pk)
    ).scalars()
    assert [reply["text"] for reply in replies] == ["one"]


def test_a_stored_reply_dates_the_session(connection, store, session_id, user_id):
    start = datetime.now(UTC)
    message_pk = store(session_id, user_id, "m-1", now=start).message_pk
    answered_at = start + timedelta(seconds=4)

    _reply(connection, session_id, message_pk, now=answered_at)

    assert db.session.get(ChatSession, session_id).last_message_date == answered_at


def test_a_reply_stores_the_extra_columns_it_is_given(connection, store, session_id, user_id):
    message_pk = store(session_id, user_id, "m-1").message_pk
    delivered_at = datetime.now(UTC)

    reply_pk = message_queries.insert_reply(
        connection,
        session_id=session_id,
        in_reply_to_pk=message_pk,
        message={"text": "Done."},
        event_name="mojo_message",
        now=delivered_at,
        delivery_attempts=1,
        last_delivery_at=delivered_at,
    )

    stored = connection.execute(
        select(Message.delivery_attempts, Message.last_delivery_at, Message.sender).where(
            Message.message_pk == reply_pk
        )
    ).one()
    assert tuple(stored) == (1, delivered_at, MOJO_SENDER)
    assert connection.scalar(select(func.count()).select_from(Message)) == 2


def test_older_history_pages_back_from_the_claims_oldest_message_newest_first(
    connection, store, session_id, user_id
):
    start = datetime.now(UTC)
    total = message_queries.HISTORY_LIMIT + 12
    for n in range(total):
        last = store(
            session_id, user_id, f"m-{n}", f"message {n}", now=start + timedelta(seconds=n)
        )
    oldest = _claim_with_history(connection, last.message_pk)[-1]
    connection.execute(
        update(Message)
        .where(Message.message_pk == oldest.message_pk - 2)
        .values(in_error_state=start)
    )

    page = message_queries.older_history(
        connection, session_id, oldest.message_date, oldest.message_pk, page_size=5
    )

    first_older = total - message_queries.HISTORY_LIMIT - 1
    assert [row.message["text"] for row in page] == [
        f"message {n}"
        for n in (first_older, first_older - 2, first_older - 3, first_older - 4, first_older - 5)
    ]
