"""GET /message pagination: newest first, offset from either end."""

from __future__ import annotations

import pytest


def question(n: int) -> str:
    return f"question {n} [llm:reply=answer {n}]"


@pytest.fixture
def six_messages(api, user, session_id, connect):
    """Three turns: user, mojo, user, mojo, user, mojo (oldest first)."""
    client = connect(user, session_id)
    for n in range(3):
        api.send_message(user, session_id, question(n))
        client.wait_for("mojo_message", lambda m, n=n: m["text"] == f"answer {n}")
    return session_id


def texts(messages):
    return [m["message"]["text"] for m in messages]


def test_first_page_holds_the_newest_messages(api, user, six_messages):
    page = api.messages(user, six_messages, n_messages=2)

    assert texts(page) == ["answer 2", question(2)]


def test_offset_older_walks_back_in_time(api, user, six_messages):
    page = api.messages(user, six_messages, n_messages=2, offset=2, offset_direction="older")

    assert texts(page) == ["answer 1", question(1)]


def test_offset_newer_counts_from_the_oldest_and_still_lists_newest_first(api, user, six_messages):
    page = api.messages(user, six_messages, n_messages=2, offset=1, offset_direction="newer")

    assert texts(page) == [question(1), "answer 0"]


def test_page_past_the_end_is_empty(api, user, six_messages):
    assert api.messages(user, six_messages, n_messages=5, offset=10) == []


def test_page_size_above_fifty_is_served_fifty_at_most(api, user, six_messages):
    assert len(api.messages(user, six_messages, n_messages=500)) == 6
