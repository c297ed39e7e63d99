"""The whole turn, over a real web node, Celery worker, Redis and PostgreSQL."""

from __future__ import annotations

import itertools

from devtools.scripted_llm import scripted_reply


def expected_answer(text: str) -> str:
    return scripted_reply([{"role": "user", "content": text}])


def test_put_user_message_answers_with_the_stored_message(api, user, session_id):
    response = api.send_message(user, session_id, "Hello there", message_id="client-1")

    assert response.status_code == 200
    body = response.json()
    assert body["text"] == "Hello there"
    assert body["message_id"] == "client-1"
    assert isinstance(body["message_pk"], int)


def test_user_message_reception_is_emitted_to_the_room(api, user, session_id, connect):
    client = connect(user, session_id)

    api.send_message(user, session_id, "Are you there?")

    reception = client.wait_for("user_message_reception")
    assert reception["session_id"] == session_id
    assert reception["success"]


def test_answer_streams_growing_mojo_tokens_then_one_mojo_message(api, user, session_id, connect):
    client = connect(user, session_id)
    text = "Tell me something [llm:words=40] [llm:token_interval_ms=5]"

    api.send_message(user, session_id, text)

    message = client.wait_for("mojo_message")
    answer = expected_answer(text)
    assert message["text"] == answer
    assert message["text_with_tags"] == answer
    assert message["session_id"] == session_id
    assert isinstance(message["message_pk"], int)
    assert message["audio"] is False
    assert "user_task_execution_pk" in message
    tokens = [t["text"] for t in client.events("mojo_token")]
    assert len(tokens) >= 2
    assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(tokens))
    assert tokens[-1] == answer
    assert all(t["session_id"] == session_id for t in client.events("mojo_token"))
    assert len(client.events("mojo_message")) == 1


def test_tokens_are_coalesced_rather_than_one_emit_per_model_token(api, user, session_id, connect):
    client = connect(user, session_id)
    # 200 words at 1 ms apart: one emit per word would be ~200 events.
    text = "Stream quickly [llm:words=200] [llm:token_interval_ms=1]"

    api.send_message(user, session_id, text)

    client.wait_for("mojo_message")
    assert len(client.events("mojo_token")) < 100


def test_history_lists_both_messages_newest_first(api, user, session_id, connect):
    client = connect(user, session_id)
    api.send_message(user, session_id, "First question", message_id="m-1")
    reply = client.wait_for("mojo_message")

    messages = api.messages(user, session_id)

    assert [m["sender"] for m in messages] == ["mojo", "user"]
    assert messages[0]["message_pk"] == reply["message_pk"]
    assert messages[0]["message"]["text"] == expected_answer("First question")
    assert messages[1]["message"]["text"] == "First question"
    assert messages[1]["message"]["message_id"] == "m-1"
    assert all(m["in_error_state"] is False and m["audio"] is False for m in messages)


def test_the_model_is_sent_the_conversation_so_far(api, user, session_id, connect):
    client = connect(user, session_id)
    api.send_message(user, session_id, "[llm:reply=Noted.]")
    client.wait_for("mojo_message")

    api.send_message(user, session_id, "What did you see? [llm:script=history]")

    second = client.wait_for("mojo_message", lambda m: m["text"] != "Noted.")
    assert second["text"] == "Seen: system user assistant user."
    assert len(api.messages(user, session_id)) == 4


def test_sessions_with_messages_are_listed_newest_first(api, user, connect):
    older = api.create_session(user)
    newer = api.create_session(user)
    empty = api.create_session(user)
    for session_id in (older, newer):
        client = connect(user, session_id)
        api.send_message(user, session_id, f"Hello from {session_id[:6]}")
        client.wait_for("mojo_message")

    response = api.call("GET", "/session", user.token)

    listed = [s["session_id"] for s in response.json()["sessions"]]
    assert listed == [newer, older]
    assert empty not in listed
    assert response.json()["sessions"][0]["title"].startswith("Hello from")


def test_deleted_session_is_no_longer_listed_or_usable(api, user, session_id, connect):
    client = connect(user, session_id)
    api.send_message(user, session_id, "Soon gone")
    client.wait_for("mojo_message")

    deleted = api.call("DELETE", "/session", user.token, params={"session_id": session_id})

    assert deleted.status_code == 200
    assert deleted.json() == {"session_id": session_id}
    sessions = api.call("GET", "/session", user.token).json()["sessions"]
    assert session_id not in [s["session_id"] for s in sessions]
    assert api.send_message(user, session_id, "Still there?").status_code == 404
