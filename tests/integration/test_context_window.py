"""The model's context window (LLM_CONTEXT_WINDOW_TOKENS): a long session keeps being
answered with the newest history that fits, a message that can never fit is refused with
413, and a provider that still finds the prompt too long gets it once more with half the
history. The scripted LLM enforces a window of its own (`[llm:context_window=N]`) and
refuses longer requests as OpenAI does (400 `context_length_exceeded`)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import pytest
import requests

from common.queries.messages import HISTORY_LIMIT
from tests.support.clients import Api, SocketClient
from tests.support.stack import Stack, isolated_stack

WINDOW = 1200
MAX_ANSWER = 100
# The scripted LLM's window matches the one System1 is told about.
SAME_WINDOW = f"[llm:context_window={WINDOW}]"


@pytest.fixture(scope="module")
def window_stack(database_url, llm_url, tmp_path_factory) -> Iterator[Stack]:
    stack = isolated_stack(
        database_url,
        llm_url,
        tmp_path_factory.mktemp("window"),
        "window",
        LLM_CONTEXT_WINDOW_TOKENS=str(WINDOW),
        LLM_MAX_ANSWER_TOKENS=str(MAX_ANSWER),
    )
    yield stack
    stack.stop()


@pytest.fixture
def window_api(window_stack) -> Api:
    return Api(window_stack.base_url)


@pytest.fixture
def chat(window_stack, window_api) -> Iterator[tuple[Api, object, str, SocketClient]]:
    """A user's fresh session on the windowed stack, watched by a socket client."""
    user = window_api.register("Ada")
    session_id = window_api.create_session(user)
    client = SocketClient(window_stack.base_url, user.token).connect()
    client.start_session(session_id)
    yield window_api, user, session_id, client
    client.close()


def streams(llm_url: str) -> list[dict]:
    return requests.get(llm_url.removesuffix("/v1") + "/_streams", timeout=5).json()["streams"]


def say(api: Api, user, session_id: str, client: SocketClient, text: str) -> dict:
    """Send `text` and wait for its answer (not an error)."""
    response = api.send_message(user, session_id, text)
    assert response.status_code == 200, response.text
    pk = response.json()["message_pk"]
    # Replies and errors both name the user message they answer.
    return client.wait_for(
        "mojo_message",
        lambda m: m.get("message_pk", 0) > pk and m.get("text", "").startswith(("Echo", "Seen")),
        timeout=30,
    )


def test_a_session_of_200_long_messages_keeps_being_answered_within_a_small_window(chat, llm_url):
    api, user, session_id, client = chat
    marker = secrets.token_hex(3)
    long_text = " ".join(f"detail{i}" for i in range(60))

    for index in range(200):
        answer = say(api, user, session_id, client, f"L{marker} {index} {long_text} {SAME_WINDOW}")
        assert answer["text"].startswith(f"Echo: L{marker} {index} ")

    assert client.events("error") == []
    sent = [s for s in streams(llm_url) if s["head"].startswith(f"Echo: L{marker} ")]
    assert len(sent) == 200
    # What reached the LLM fits its window, answer's room included, as the LLM counts it.
    assert max(s["prompt_tokens"] for s in sent) + MAX_ANSWER <= WINDOW
    # The window cut the history, not the number of rows a turn reads.
    assert 2 < sent[-1]["messages"] < HISTORY_LIMIT


def test_a_message_too_long_for_the_window_even_alone_gets_413_and_is_not_stored(chat):
    api, user, session_id, _client = chat

    response = api.send_message(user, session_id, "word " * 3000)

    assert response.status_code == 413
    body = response.json()
    assert "too long" in body["error"] and str(body["limit"]) in body["error"]
    assert 0 < body["limit"] < WINDOW < body["tokens"]
    assert api.messages(user, session_id) == []


def test_a_prompt_the_llm_finds_too_long_is_retried_once_with_half_the_history(chat, window_stack):
    api, user, session_id, client = chat
    for index in range(4):
        say(api, user, session_id, client, f"Note {index}: " + "w " * 30)

    # The LLM's window holds the system prompt, the message and about half the history.
    answer = say(
        api,
        user,
        session_id,
        client,
        "What did you see? [llm:script=history] [llm:context_window=380]",
    )

    # System prompt, the newer half of the 8 history messages, the message answered.
    assert answer["text"] == "Seen: system user assistant user assistant user."
    assert client.events("error") == []
    time.sleep(0.2)
    log = window_stack.workers[0].log_path.read_text()
    assert "retrying once with 4 of the 8 history messages" in log


def test_an_answer_cut_by_the_answer_limit_is_flagged_truncated(chat):
    api, user, session_id, client = chat

    answer = say(api, user, session_id, client, "Tell me everything [llm:words=300]")

    assert answer["truncated"] is True
    assert len(answer["text"].split()) == MAX_ANSWER
    assert api.messages(user, session_id)[0]["message"]["truncated"] is True
