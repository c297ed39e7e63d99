"""Idempotent input and turns: one user message and one answer per client
message_id, whatever the client repeats."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.clients import Api


def test_repeated_message_id_returns_the_same_stored_message(api, user, session_id):
    first = api.send_message(user, session_id, "Once please", message_id="same-id")
    second = api.send_message(user, session_id, "Once please", message_id="same-id")

    assert first.status_code == second.status_code == 200
    assert second.json() == first.json()


def test_repeated_message_id_starts_one_turn(api, user, session_id, connect):
    client = connect(user, session_id)
    for _ in range(3):
        api.send_message(user, session_id, "[llm:reply=Only once.]", message_id="again")
    client.wait_for("mojo_message")

    with pytest.raises(TimeoutError):
        client.wait_for("mojo_message", timeout=3)
    assert [m["sender"] for m in api.messages(user, session_id)] == ["mojo", "user"]


def test_concurrent_duplicates_store_one_message_and_one_answer(stack, user, session_id, connect):
    client = connect(user, session_id)

    def send(_: int):
        # One HTTP connection per request, so they really arrive together.
        return Api(stack.base_url).send_message(
            user, session_id, "[llm:reply=Raced.]", message_id="raced"
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(send, range(8)))
    client.wait_for("mojo_message")

    assert {r.status_code for r in responses} == {200}
    assert len({r.json()["message_pk"] for r in responses}) == 1
    with pytest.raises(TimeoutError):
        client.wait_for("mojo_message", timeout=3)
    assert len(Api(stack.base_url).messages(user, session_id)) == 2


def test_same_message_id_in_another_session_is_a_new_message(api, user):
    first_session = api.create_session(user)
    second_session = api.create_session(user)

    first = api.send_message(user, first_session, "Hi", message_id="shared").json()
    second = api.send_message(user, second_session, "Hi", message_id="shared").json()

    assert first["message_pk"] != second["message_pk"]
