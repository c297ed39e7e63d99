"""web/services/messages.py in-process: a user message is stored once and queues one
turn on the real broker; the conversation is read back page by page."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from common.errors import Forbidden, NotFound
from common.models import Message, UserTaskExecution
from common.settings import get_settings
from web.extensions import db
from web.services import sessions
from web.services.messages import list_messages, receive_user_message


def _queued_message_pks(broker) -> list[int]:
    """The user message each queued turn answers (Celery's message body, protocol 2)."""
    pks = []
    for raw in broker.lrange(get_settings().turn_queue, 0, -1):
        envelope = json.loads(raw)
        assert envelope["headers"]["task"] == "system1.assistant_turn"
        args, _kwargs, _embed = json.loads(_decode_body(envelope))
        pks.extend(args)
    return pks


def _decode_body(envelope: dict) -> bytes:
    assert envelope["properties"]["body_encoding"] == "base64"
    return base64.b64decode(envelope["body"])


def test_a_user_message_is_stored_and_queues_the_turn_answering_it(
    user_id, session_id, broker, queued_turns
):
    stored = receive_user_message(user_id, session_id, "m-1", "Hello")

    message = db.session.get(Message, stored["message_pk"])
    assert (message.session_id, message.sender, message.text) == (session_id, "user", "Hello")
    assert stored == {"text": "Hello", "message_id": "m-1", "message_pk": message.message_pk}
    assert queued_turns() == 1
    assert _queued_message_pks(broker) == [message.message_pk]


def test_a_repeated_message_id_answers_the_stored_message_and_queues_nothing(
    user_id, session_id, queued_turns
):
    first = receive_user_message(user_id, session_id, "m-1", "Hello")

    again = receive_user_message(user_id, session_id, "m-1", "Hello, again")

    assert again == first
    assert queued_turns() == 1
    assert [m.text for m in db.session.scalars(select(Message))] == ["Hello"]


def test_a_message_to_another_users_session_is_forbidden(other_user_id, session_id, queued_turns):
    with pytest.raises(Forbidden):
        receive_user_message(other_user_id, session_id, "m-1", "Hi")

    assert queued_turns() == 0
    assert db.session.scalars(select(Message)).all() == []


def test_a_message_to_an_unknown_session_is_not_found(user_id, queued_turns):
    with pytest.raises(NotFound):
        receive_user_message(user_id, "no-such-session", "m-1", "Hi")

    assert queued_turns() == 0


def test_a_message_to_a_deleted_session_is_not_found(user_id, session_id, queued_turns):
    sessions.delete_session(user_id, session_id)

    with pytest.raises(NotFound):
        receive_user_message(user_id, session_id, "m-1", "Hi")

    assert queued_turns() == 0


def test_a_message_in_a_task_session_belongs_to_its_execution_and_starts_it(
    user_id, make_execution, broker
):
    execution = make_execution(user_id)
    pk = execution["user_task_execution_pk"]

    stored = receive_user_message(user_id, execution["session_id"], "m-1", "Here is my text")

    assert stored["user_task_execution_pk"] == pk
    assert db.session.get(UserTaskExecution, pk).start_date is not None
    assert _queued_message_pks(broker) == [stored["message_pk"]]


def _send(user_id, session_id, count):
    for n in range(count):
        receive_user_message(user_id, session_id, f"m-{n}", f"message {n}")
    # Sent in one burst: distinct dates say the order for sure.
    start = datetime.now(UTC)
    for n, message in enumerate(
        db.session.scalars(
            select(Message).where(Message.session_id == session_id).order_by(Message.message_pk)
        )
    ):
        db.session.execute(
            update(Message)
            .where(Message.message_pk == message.message_pk)
            .values(message_date=start + timedelta(seconds=n))
        )
    db.session.commit()


def _texts(page):
    return [m["message"]["text"] for m in page["messages"]]


def test_the_newest_messages_come_first(user_id, session_id):
    _send(user_id, session_id, 5)

    page = list_messages(user_id, session_id, 2, 0, "older")

    assert _texts(page) == ["message 4", "message 3"]


def test_older_pages_skip_the_newest_messages(user_id, session_id):
    _send(user_id, session_id, 5)

    page = list_messages(user_id, session_id, 2, 2, "older")

    assert _texts(page) == ["message 2", "message 1"]


def test_newer_pages_skip_the_oldest_messages_and_still_read_newest_first(user_id, session_id):
    _send(user_id, session_id, 5)

    page = list_messages(user_id, session_id, 2, 1, "newer")

    assert _texts(page) == ["message 2", "message 1"]


def test_a_listed_message_says_who_sent_it_and_whether_it_failed(user_id, session_id):
    stored = receive_user_message(user_id, session_id, "m-1", "Hello")

    [listed] = list_messages(user_id, session_id, 10, 0, "older")["messages"]

    assert listed["message_pk"] == stored["message_pk"]
    assert listed["message"] == stored
    assert (listed["sender"], listed["in_error_state"], listed["audio"]) == ("user", False, False)


def test_another_users_conversation_is_not_listed(other_user_id, user_id, session_id):
    receive_user_message(user_id, session_id, "m-1", "Private")

    with pytest.raises(Forbidden):
        list_messages(other_user_id, session_id, 10, 0, "older")


def test_the_messages_of_one_execution_can_be_listed_alone(user_id, make_execution):
    execution = make_execution(user_id)
    session_id = execution["session_id"]
    receive_user_message(user_id, session_id, "m-1", "For the execution")

    listed = list_messages(
        user_id, session_id, 10, 0, "older", execution["user_task_execution_pk"] + 1
    )
    own = list_messages(user_id, session_id, 10, 0, "older", execution["user_task_execution_pk"])

    assert listed["messages"] == []
    assert _texts(own) == ["For the execution"]
