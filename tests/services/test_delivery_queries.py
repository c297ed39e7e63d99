"""common/queries/messages.py, delivery, resends and recovery, and common/delivery/acks.py:
which assistant messages are delivered, resent, replayed and recovered, against the real
PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from common.db import with_db_session
from common.delivery.acks import record_acks
from common.models import Message
from common.queries import messages as message_queries

INTERVAL = timedelta(seconds=5)
WINDOW = timedelta(minutes=10)
MAX_DELIVERIES = 3
NOW = datetime.now(UTC)


@pytest.fixture
def reply(connection, store, session_id, user_id):
    """Store a user message and the assistant's reply to it, delivered `attempts` times,
    last at `last_delivery_at`; the reply's pk."""
    sent = iter(range(1_000))

    def _reply(
        attempts: int = 1,
        last_delivery_at: datetime | None = None,
        created_at: datetime = NOW,
        in_session: str | None = None,
        **columns,
    ) -> int:
        target = in_session or session_id
        message_pk = store(target, user_id, f"m-{next(sent)}", now=created_at).message_pk
        return message_queries.insert_reply(
            connection,
            session_id=target,
            in_reply_to_pk=message_pk,
            message={"text": "answer"},
            event_name="mojo_message",
            now=created_at,
            delivery_attempts=attempts,
            last_delivery_at=last_delivery_at,
            **columns,
        )

    return _reply


def _claim_due(db, limit=100, now=NOW):
    return message_queries.claim_due_resends(
        db, now, interval=INTERVAL, max_deliveries=MAX_DELIVERIES, window=WINDOW, limit=limit
    )


def _claimed_pks(limit=100, now=NOW):
    with with_db_session(durable=False) as db:
        rows = _claim_due(db, limit, now)
        db.commit()
    return {row.message_pk for row in rows}


def _delivery_state(connection, message_pk):
    return connection.execute(
        select(Message.delivery_attempts, Message.last_delivery_at).where(
            Message.message_pk == message_pk
        )
    ).one()


def test_the_first_delivery_of_a_message_is_counted(reply, connection):
    message_pk = reply(attempts=0)

    with with_db_session() as db:
        counted = message_queries.count_first_delivery(db, message_pk, NOW)
        db.commit()

    assert counted.message_pk == message_pk
    assert tuple(_delivery_state(connection, message_pk)) == (1, NOW)


def test_a_first_delivery_is_counted_only_once(reply, connection):
    message_pk = reply(attempts=0)

    with with_db_session() as db:
        message_queries.count_first_delivery(db, message_pk, NOW)
        again = message_queries.count_first_delivery(db, message_pk, NOW + INTERVAL)
        db.commit()

    assert again is None
    assert tuple(_delivery_state(connection, message_pk)) == (1, NOW)


def test_an_acknowledged_message_is_not_delivered(reply):
    message_pk = reply(attempts=0, acknowledged_at=NOW)

    with with_db_session() as db:
        assert message_queries.count_first_delivery(db, message_pk, NOW) is None


def test_a_message_last_delivered_an_interval_ago_is_resent(reply, connection):
    due = reply(last_delivery_at=NOW - INTERVAL)

    with with_db_session() as db:
        [row] = _claim_due(db)
        db.commit()

    assert (row.message_pk, row.event_name, row.message, row.delivery_attempts) == (
        due,
        "mojo_message",
        {"text": "answer"},
        2,
    )
    assert tuple(_delivery_state(connection, due)) == (2, NOW)


def test_a_message_delivered_less_than_an_interval_ago_is_not_resent(reply):
    reply(last_delivery_at=NOW - INTERVAL + timedelta(seconds=1))

    assert _claimed_pks() == set()


def test_a_message_out_of_tries_is_not_resent(reply):
    reply(attempts=MAX_DELIVERIES, last_delivery_at=NOW - INTERVAL)

    assert _claimed_pks() == set()


def test_a_message_last_delivered_before_the_window_is_left_to_the_replay(reply):
    reply(last_delivery_at=NOW - WINDOW - timedelta(seconds=1))

    assert _claimed_pks() == set()


def test_a_never_delivered_message_is_not_resent(reply):
    reply(attempts=0)

    assert _claimed_pks() == set()


def test_acknowledged_and_failed_messages_are_not_resent(reply):
    reply(last_delivery_at=NOW - INTERVAL, acknowledged_at=NOW)
    reply(last_delivery_at=NOW - INTERVAL, in_error_state=NOW)

    assert _claimed_pks() == set()


def test_a_resend_claims_at_most_its_limit_oldest_first(reply):
    oldest = reply(last_delivery_at=NOW - 3 * INTERVAL)
    older = reply(last_delivery_at=NOW - 2 * INTERVAL)
    reply(last_delivery_at=NOW - INTERVAL)

    assert _claimed_pks(limit=2) == {oldest, older}


def test_a_resent_message_is_not_due_again_until_the_next_interval(reply):
    due = reply(last_delivery_at=NOW - INTERVAL)
    _claimed_pks()

    assert _claimed_pks(now=NOW + INTERVAL - timedelta(seconds=1)) == set()
    assert _claimed_pks(now=NOW + INTERVAL) == {due}


def test_two_concurrent_sweeps_never_claim_the_same_message(reply):
    due = {reply(last_delivery_at=NOW - INTERVAL) for _ in range(3)}

    with with_db_session(durable=False) as first, with_db_session(durable=False) as second:
        # The first sweep holds its rows locked (not committed) while the second runs.
        by_first = {row.message_pk for row in _claim_due(first, limit=2)}
        by_second = {row.message_pk for row in _claim_due(second, limit=100)}
        first.commit()
        second.commit()

    assert len(by_first) == 2
    assert by_first.isdisjoint(by_second)
    assert by_first | by_second == due


def test_the_oldest_resendable_delivery_says_when_the_next_resend_is_due(reply):
    reply(last_delivery_at=NOW - timedelta(seconds=2))
    reply(last_delivery_at=NOW - timedelta(seconds=1))
    # Neither of these will be resent: they do not set the sweep's next wait.
    reply(attempts=MAX_DELIVERIES, last_delivery_at=NOW - timedelta(seconds=4))
    reply(last_delivery_at=NOW - timedelta(seconds=3), acknowledged_at=NOW)

    with with_db_session() as db:
        oldest = message_queries.oldest_resendable_delivery(db, NOW, MAX_DELIVERIES, WINDOW)

    assert oldest == NOW - timedelta(seconds=2)


def test_no_resendable_delivery_means_no_next_resend(reply):
    reply(attempts=0)

    with with_db_session() as db:
        assert message_queries.oldest_resendable_delivery(db, NOW, MAX_DELIVERIES, WINDOW) is None


def test_a_session_replays_its_unacknowledged_messages_oldest_first(
    reply, make_session, session_id, user_id
):
    first = reply(attempts=0)
    second = reply(last_delivery_at=NOW)
    reply(last_delivery_at=NOW, acknowledged_at=NOW)
    reply(last_delivery_at=NOW, in_session=make_session(user_id))

    with with_db_session() as db:
        replayed = message_queries.unacknowledged_in_session(db, session_id, limit=10)

    assert [message.message_pk for message in replayed] == [first, second]


def test_the_replay_holds_at_most_its_limit(reply):
    first = reply(attempts=0)
    reply(attempts=0)

    with with_db_session() as db:
        replayed = message_queries.unacknowledged_in_session(db, _session_of(db, first), limit=1)

    assert [message.message_pk for message in replayed] == [first]


def _session_of(db, message_pk):
    return db.scalar(select(Message.session_id).where(Message.message_pk == message_pk))


def test_recovery_finds_messages_stored_but_never_delivered_in_its_window(reply):
    lost = reply(attempts=0, created_at=NOW - timedelta(minutes=1))
    reply(attempts=1, last_delivery_at=NOW, created_at=NOW - timedelta(minutes=1))
    reply(attempts=0, created_at=NOW - timedelta(hours=1))  # before the window
    reply(attempts=0, created_at=NOW)  # too recent: its first delivery may be under way

    with with_db_session() as db:
        found = message_queries.never_delivered(
            db, NOW - timedelta(minutes=10), NOW - timedelta(seconds=15), limit=10
        )

    assert list(found) == [lost]


def test_recovery_finds_unanswered_turns_whose_lease_ran_out(
    connection, store, session_id, user_id
):
    created = NOW - timedelta(minutes=1)
    lost = store(session_id, user_id, "lost", now=created, lease_s=10).message_pk
    store(session_id, user_id, "live", now=NOW, lease_s=20)
    answered = store(session_id, user_id, "answered", now=created, lease_s=10).message_pk
    message_queries.insert_reply(
        connection,
        session_id=session_id,
        in_reply_to_pk=answered,
        message={"text": "done"},
        event_name="mojo_message",
        now=NOW,
    )
    store(session_id, user_id, "old", now=NOW - timedelta(hours=1), lease_s=10)

    with with_db_session() as db:
        found = message_queries.unanswered_turns(db, NOW - timedelta(minutes=10), NOW, limit=10)

    assert list(found) == [lost]


def test_recovery_finds_an_unanswered_turn_that_holds_no_lease(
    connection, store, session_id, user_id
):
    message_pk = store(session_id, user_id, "m-1", now=NOW - timedelta(minutes=1)).message_pk
    connection.execute(
        update(Message).where(Message.message_pk == message_pk).values(turn_lease_until=None)
    )

    with with_db_session() as db:
        found = message_queries.unanswered_turns(db, NOW - timedelta(minutes=10), NOW, limit=10)

    assert list(found) == [message_pk]


def test_an_ack_is_stored_once(reply, connection):
    message_pk = reply(last_delivery_at=NOW)

    first = record_acks([message_pk])
    acknowledged_at = connection.scalar(
        select(Message.acknowledged_at).where(Message.message_pk == message_pk)
    )
    again = record_acks([message_pk])

    assert first == {message_pk}
    assert again == set()
    assert acknowledged_at is not None
    assert (
        connection.scalar(select(Message.acknowledged_at).where(Message.message_pk == message_pk))
        == acknowledged_at
    )


def test_a_batch_of_acks_answers_only_the_first_ones(reply):
    acknowledged = reply(last_delivery_at=NOW)
    record_acks([acknowledged])
    fresh = reply(last_delivery_at=NOW)

    assert record_acks([acknowledged, fresh, 999_999]) == {fresh}


def test_an_acknowledged_message_is_no_longer_replayed(reply):
    message_pk = reply(last_delivery_at=NOW)

    record_acks([message_pk])

    with with_db_session() as db:
        assert message_queries.unacknowledged_in_session(db, _session_of(db, message_pk), 10) == []


def test_recovery_finds_a_lost_turn_of_a_task_run(store, user_id, make_execution):
    execution = make_execution(user_id)
    run = store(
        execution["session_id"],
        user_id,
        "user_task_execution_run",
        "Task inputs: ...",
        sender="system",
        expected_mode="form",
        now=NOW - timedelta(minutes=1),
        lease_s=10,
    ).message_pk

    with with_db_session() as db:
        found = message_queries.unanswered_turns(db, NOW - timedelta(minutes=10), NOW, limit=10)

    assert list(found) == [run]
