"""The fallback provider (LLM_FALLBACK_*): a primary that fails before its first token
hands the turn to the fallback at once, and the stored message says which model answered;
a primary that keeps failing is skipped for LLM_BREAKER_OPEN_S (a breaker shared through
Redis), then tried again. Primary and fallback are the scripted LLM under two model names
(`[llm:fail_model=scripted]` fails the primary only), or a primary that refuses
connections."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis
import requests

from devtools.embedded import free_port
from tests.support.clients import Api, SocketClient
from tests.support.stack import Stack, isolated_stack

FAILURES = 3
OPEN_S = 3
PRIMARY_DOWN = "[llm:fail_model=scripted]"


@pytest.fixture(scope="module")
def fallback_stack(database_url, llm_url, tmp_path_factory) -> Iterator[Stack]:
    stack = isolated_stack(
        database_url,
        llm_url,
        tmp_path_factory.mktemp("fallback"),
        "fallback",
        LLM_FALLBACK_MODEL="backup",
        LLM_BREAKER_FAILURES=str(FAILURES),
        LLM_BREAKER_OPEN_S=str(OPEN_S),
    )
    yield stack
    stack.stop()


@pytest.fixture
def chat(fallback_stack) -> Iterator[tuple[Api, object, str, SocketClient]]:
    """A fresh session, watched; each test starts with the primary's breaker closed."""
    client_redis = redis.Redis.from_url(fallback_stack.env["REDIS_URL"])
    keys = client_redis.keys("system1:llm_breaker:*")
    if keys:
        client_redis.delete(*keys)
    api = Api(fallback_stack.base_url)
    user = api.register("Ada")
    session_id = api.create_session(user)
    client = SocketClient(fallback_stack.base_url, user.token).connect()
    client.start_session(session_id)
    yield api, user, session_id, client
    client.close()


def answer(api: Api, user, session_id: str, client: SocketClient, text: str) -> dict:
    pk = api.send_message(user, session_id, text).json()["message_pk"]
    return client.wait_for("mojo_message", lambda m: m["message_pk"] > pk, timeout=20)


def primary_state(stack: Stack) -> str:
    health = requests.get(stack.base_url + "/health", timeout=5).json()
    return health["checks"]["llm"]["providers"]["primary"]["state"]


@pytest.mark.parametrize(
    "failure",
    [PRIMARY_DOWN, f"{PRIMARY_DOWN} [llm:fail_status=429] [llm:retry_after=30]"],
    ids=["primary-answers-500", "primary-answers-429"],
)
def test_the_fallback_answers_at_once_when_the_primary_fails_before_its_first_token(chat, failure):
    api, user, session_id, client = chat
    sent_at = time.monotonic()

    message = answer(api, user, session_id, client, f"Hi {failure} [llm:reply=From the backup.]")

    assert message["text"] == "From the backup."
    # At once: no retry backoff, and not the 30 s a 429 asked for.
    assert time.monotonic() - sent_at < 5
    assert client.events("error") == []


def test_the_stored_message_records_the_model_that_answered(chat):
    api, user, session_id, client = chat

    answer(api, user, session_id, client, f"Hi {PRIMARY_DOWN}")
    answer(api, user, session_id, client, "Hi again")

    stored = api.messages(user, session_id)
    assert [m["message"]["usage"]["model"] for m in stored if m["sender"] == "mojo"] == [
        "scripted",
        "backup",
    ]


def test_a_primary_that_keeps_failing_is_skipped_while_its_breaker_is_open(chat, fallback_stack):
    api, user, session_id, client = chat
    for _ in range(FAILURES):
        answer(api, user, session_id, client, f"Hi {PRIMARY_DOWN}")

    # The primary would answer this one: it is not asked.
    message = answer(api, user, session_id, client, "Are you there?")

    assert message["usage"]["model"] == "backup"
    assert primary_state(fallback_stack) == "open"
    scrape = requests.get(fallback_stack.base_url + "/metrics", timeout=5).text
    assert 'system1_llm_provider_state{provider="primary",state="open"} 1.0' in scrape


def test_the_primary_is_tried_again_after_the_breaker_was_open_and_closes_it(chat, fallback_stack):
    api, user, session_id, client = chat
    for _ in range(FAILURES):
        answer(api, user, session_id, client, f"Hi {PRIMARY_DOWN}")
    assert primary_state(fallback_stack) == "open"

    time.sleep(OPEN_S + 0.5)
    assert primary_state(fallback_stack) == "half_open"
    message = answer(api, user, session_id, client, "Back?")

    assert message["usage"]["model"] == "scripted"
    assert primary_state(fallback_stack) == "closed"


def test_the_fallback_answers_when_the_primary_refuses_connections(database_url, llm_url, tmp_path):
    refused = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    stack = isolated_stack(
        database_url,
        refused,
        tmp_path,
        "refused",
        LLM_FALLBACK_BASE_URL=llm_url,
        LLM_FALLBACK_MODEL="backup",
    )
    try:
        api = Api(stack.base_url)
        user = api.register("Ada")
        session_id = api.create_session(user)
        client = SocketClient(stack.base_url, user.token).connect()
        client.start_session(session_id)

        message = answer(api, user, session_id, client, "[llm:reply=Still here.]")

        assert message["text"] == "Still here."
        assert message["usage"]["model"] == "backup"
        client.close()
    finally:
        stack.stop()
