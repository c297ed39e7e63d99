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
from tests.support.metrics import settled_scrape, value
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


@pytest.fixture(scope="module")
def refused_primary_stack(database_url, llm_url, tmp_path_factory) -> Iterator[Stack]:
    """A primary that nobody listens for (connections refused) and the scripted LLM as
    the fallback: whatever answers, answers as "backup"."""
    stack = isolated_stack(
        database_url,
        f"http://127.0.0.1:{free_port()}/v1",
        tmp_path_factory.mktemp("refused"),
        "refused",
        LLM_FALLBACK_BASE_URL=llm_url,
        LLM_FALLBACK_MODEL="backup",
    )
    yield stack
    stack.stop()


@pytest.fixture
def refused_chat(refused_primary_stack) -> Iterator[tuple[Api, object, SocketClient]]:
    api = Api(refused_primary_stack.base_url)
    user = api.register("Ada")
    client = SocketClient(refused_primary_stack.base_url, user.token).connect()
    yield api, user, client
    client.close()


def test_the_fallback_answers_when_the_primary_refuses_connections(refused_chat):
    api, user, client = refused_chat
    session_id = api.create_session(user)
    client.start_session(session_id)

    message = answer(api, user, session_id, client, "[llm:reply=Still here.]")

    assert message["text"] == "Still here."
    assert message["usage"]["model"] == "backup"


EMAIL_INPUTS = [
    {"input_name": "recipient", "value": "Sarah"},
    {"input_name": "purpose", "value": "a day off on Friday"},
]


def test_a_task_runs_title_comes_from_the_fallback_when_the_primary_is_down(
    refused_chat, refused_primary_stack
):
    api, user, client = refused_chat
    before = settled_scrape(refused_primary_stack.base_url)

    execution = api.start_task(user, "Write an email", EMAIL_INPUTS)
    client.start_session(execution["session_id"])
    titled = client.wait_for("user_task_execution_title", timeout=30)

    assert titled["title"] == "Write an email: first draft"
    after = settled_scrape(refused_primary_stack.base_url)
    fallbacks = "system1_llm_fallback_calls_total"
    assert value(after, fallbacks, kind="title") > value(before, fallbacks, kind="title")


def test_a_drafts_todos_come_from_the_fallback_when_the_primary_is_down(refused_chat):
    api, user, client = refused_chat
    execution = api.start_task(user, "Write an email", EMAIL_INPUTS)
    client.start_session(execution["session_id"])
    client.wait_for("mojo_message", timeout=30)
    api.send_message(user, execution["session_id"], "Friendly tone please")
    client.wait_for("draft_message", timeout=30)

    def todos() -> list[dict]:
        response = api.call(
            "GET",
            "/todos",
            user.token,
            params={
                "offset": 0,
                "n_todos": 50,
                "user_task_execution_fk": execution["user_task_execution_pk"],
            },
        )
        assert response.status_code == 200, response.text
        return response.json()["todos"]

    deadline = time.monotonic() + 30
    while not todos() and time.monotonic() < deadline:
        time.sleep(0.2)

    assert [t["description"] for t in todos()] == [
        "Send the result of Write an email.",
        "Follow up on Write an email.",
    ]
