"""A failing LLM ends the turn with an `error` event and a stored error, and
the session keeps working."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    "directive",
    ["[llm:error=500]", "[llm:error=503]", "[llm:break_after=3]", "[llm:stall_after=2]"],
    ids=["http-500", "http-503", "stream-breaks-off", "stream-stalls"],
)
def test_failed_turn_emits_error_event_naming_the_user_message(
    api, user, session_id, connect, directive
):
    client = connect(user, session_id)

    sent = api.send_message(user, session_id, f"Please fail {directive}").json()

    error = client.wait_for("error", timeout=20)
    assert error["session_id"] == session_id
    assert error["user_message_pk"] == sent["message_pk"]
    assert error["error"]
    assert client.events("mojo_message") == []


def test_failed_turn_is_stored_as_a_message_in_error_state(api, user, session_id, connect):
    client = connect(user, session_id)
    api.send_message(user, session_id, "Please fail [llm:error=500]")
    client.wait_for("error")

    messages = api.messages(user, session_id)

    assert [m["sender"] for m in messages] == ["mojo", "user"]
    assert messages[0]["in_error_state"] is True
    assert messages[1]["in_error_state"] is False


def test_session_answers_the_next_message_after_a_failed_turn(api, user, session_id, connect):
    client = connect(user, session_id)
    api.send_message(user, session_id, "Please fail [llm:error=500]")
    client.wait_for("error")

    api.send_message(user, session_id, "[llm:reply=Back on track.]")

    assert client.wait_for("mojo_message")["text"] == "Back on track."


def test_a_transient_llm_failure_is_retried_and_answered(api, user, session_id, connect):
    client = connect(user, session_id)

    api.send_message(user, session_id, "Try again [llm:fail_first=1] [llm:reply=Recovered.]")

    assert client.wait_for("mojo_message")["text"] == "Recovered."
    assert client.events("error") == []


def test_a_request_the_llm_refuses_is_not_asked_again(api, user, session_id, connect):
    client = connect(user, session_id)

    # A second try would be answered: the turn must not make one.
    api.send_message(
        user, session_id, "Bad [llm:fail_first=1] [llm:fail_status=400] [llm:reply=Asked twice.]"
    )

    assert client.wait_for("error", timeout=20)
    assert client.events("mojo_message") == []
