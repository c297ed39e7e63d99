"""What real providers send, as the scripted LLM's quirk modes play it: each is streamed
to the user intact, with its usage; a finish reason of `length` or `content_filter`
reaches the client as a flag; an error event inside a 200 stream fails the turn cleanly."""

from __future__ import annotations

import pytest

REPLY = "Real providers are not polite, but this answer arrives whole."


@pytest.mark.parametrize(
    "quirk",
    [
        "azure_prompt_filter",
        "sse_comments",
        "usage_in_last_chunk",
        "usage_without_choices",
        "split_lines",
        "extra_fields",
        "role_only_first",
        "azure_prompt_filter,sse_comments,split_lines,extra_fields,role_only_first",
    ],
    ids=[
        "azure-first-chunk-without-choices",
        "sse-comments-and-keep-alives",
        "usage-in-the-finish-chunk",
        "usage-only-final-chunk-without-choices",
        "data-lines-split-across-reads",
        "unknown-extra-fields",
        "role-only-first-delta",
        "all-at-once",
    ],
)
def test_a_provider_quirk_streams_the_whole_answer_with_its_reported_usage(
    api, user, session_id, connect, quirk
):
    client = connect(user, session_id)

    api.send_message(user, session_id, f"Hello [llm:quirk={quirk}] [llm:reply={REPLY}]")

    message = client.wait_for("mojo_message")
    assert message["text"] == REPLY
    assert client.events("mojo_token")[-1]["text"] == REPLY
    assert message["usage"]["estimated"] is False
    assert message["usage"]["completion_tokens"] == len(REPLY.split())
    assert "truncated" not in message and "filtered" not in message
    assert client.events("error") == []


def test_an_answer_ended_for_length_reaches_the_client_flagged_truncated(
    api, user, session_id, connect
):
    client = connect(user, session_id)

    api.send_message(user, session_id, "Go on [llm:finish=length] [llm:reply=And then the]")

    message = client.wait_for("mojo_message")
    assert message["text"] == "And then the"
    assert message["truncated"] is True
    assert api.messages(user, session_id)[0]["message"]["truncated"] is True


def test_an_answer_ended_by_the_content_filter_reaches_the_client_flagged_filtered(
    api, user, session_id, connect
):
    client = connect(user, session_id)

    api.send_message(user, session_id, "Say it [llm:finish=content_filter] [llm:reply=I can]")

    message = client.wait_for("mojo_message")
    assert message["filtered"] is True
    assert "truncated" not in message
    assert api.messages(user, session_id)[0]["message"]["filtered"] is True


def test_an_error_event_inside_a_200_stream_fails_the_turn_with_an_error_event(
    api, user, session_id, connect
):
    client = connect(user, session_id)

    sent = api.send_message(
        user, session_id, "Hi [llm:quirk=error_event] [llm:reply=one two three four five]"
    ).json()

    error = client.wait_for("error", timeout=20)
    assert error["user_message_pk"] == sent["message_pk"]
    assert client.events("mojo_message") == []
    assert api.messages(user, session_id)[0]["in_error_state"] is True
