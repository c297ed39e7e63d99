"""What the background LLM calls of a task run send: a title request takes the start of
each message only, and a todo extraction's draft is cut to fit the model's window
(LLM_CONTEXT_WINDOW_TOKENS). The scripted LLM counts a prompt at one token per word,
which is never more than the offline tokenizer counts for the same English text, and its
count is what md_turn_usage stores."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg2
import pytest

from tests.support.clients import Api, SocketClient, User
from tests.support.stack import Stack, isolated_stack

WINDOW = 1200
# What the prompt may take of that window (a quarter is the answer's room).
BUDGET = WINDOW - WINDOW // 4


def background_prompt_tokens(stack: Stack, user: User, kind: str, timeout_s: float = 30) -> int:
    """The prompt tokens of the user's first `kind` call ("title", "todos"), once stored."""
    deadline = time.monotonic() + timeout_s
    while True:
        with psycopg2.connect(stack.env["DATABASE_URL"]) as connection, connection.cursor() as cur:
            cur.execute(
                "SELECT prompt_tokens FROM md_turn_usage WHERE user_id = %s AND kind = %s",
                (user.user_id, kind),
            )
            rows = cur.fetchall()
        connection.close()
        if rows:
            return rows[0][0]
        assert time.monotonic() < deadline, f"no {kind} call stored in {timeout_s}s"
        time.sleep(0.2)


def test_a_title_request_takes_the_start_of_each_message_only(api, user, stack, connect):
    pasted = " ".join(["lorem"] * 3000)  # 3,000 words and tokens, 18,000 characters
    inputs = [
        {"input_name": "recipient", "value": "Sarah"},
        {"input_name": "purpose", "value": f"answer this long thread: {pasted}"},
    ]
    execution = api.start_task(user, "Write an email", inputs)
    client = connect(user, execution["session_id"])

    assert client.wait_for("user_task_execution_title", timeout=30)["title"]

    # 500 tokens per message, four messages at most, and the instructions: about 2,100.
    assert background_prompt_tokens(stack, user, "title") < 2200


@pytest.fixture(scope="module")
def window_stack(database_url, llm_url, tmp_path_factory) -> Iterator[Stack]:
    stack = isolated_stack(
        database_url,
        llm_url,
        tmp_path_factory.mktemp("background-window"),
        "background_window",
        LLM_CONTEXT_WINDOW_TOKENS=str(WINDOW),
    )
    yield stack
    stack.stop()


def test_a_draft_longer_than_the_window_is_cut_for_its_todos(window_stack):
    api = Api(window_stack.base_url)
    user = api.register("Ada")
    inputs = [
        {"input_name": "recipient", "value": "Sarah"},
        {"input_name": "purpose", "value": "a day off"},
    ]
    execution = api.start_task(user, "Write an email", inputs)
    client = SocketClient(window_stack.base_url, user.token).connect()
    try:
        client.start_session(execution["session_id"])
        client.wait_for("mojo_message", timeout=30)
        # The model writes a 2,000-word draft: more than the whole window.
        api.send_message(user, execution["session_id"], "Friendly tone [llm:words=2000]")
        draft = client.wait_for("draft_message", timeout=60)
        assert len(draft["produced_text"].split()) > WINDOW

        assert background_prompt_tokens(window_stack, user, "todos") <= BUDGET
    finally:
        client.close()
