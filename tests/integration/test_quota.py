"""The daily token limit (USER_DAILY_TOKEN_LIMIT): past it, 429 before anything is stored
or queued, until midnight UTC. The day's usage is put into PostgreSQL directly, dated
today or yesterday: the clock the service reads is real, only the rows are placed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg2
import pytest

from tests.support.clients import Api
from tests.support.stack import Stack, isolated_stack

LIMIT = 1000


@pytest.fixture(scope="module")
def quota_stack(database_url, llm_url, tmp_path_factory) -> Iterator[Stack]:
    stack = isolated_stack(
        database_url,
        llm_url,
        tmp_path_factory.mktemp("quota"),
        "quota",
        USER_DAILY_TOKEN_LIMIT=str(LIMIT),
    )
    yield stack
    stack.stop()


@pytest.fixture
def quota_api(quota_stack) -> Api:
    return Api(quota_stack.base_url)


def spend(stack: Stack, user_id: str, tokens: int, at: datetime) -> None:
    """Record that the user's LLM calls cost `tokens` at `at`."""
    with psycopg2.connect(stack.env["DATABASE_URL"]) as connection, connection.cursor() as cur:
        cur.execute(
            "INSERT INTO md_turn_usage (user_id, kind, model, prompt_tokens, completion_tokens,"
            " estimated, stopped, created_at) VALUES (%s, 'turn', 'scripted', %s, 0, false,"
            " false, %s)",
            (user_id, tokens, at),
        )
    connection.close()


def next_midnight() -> datetime:
    now = datetime.now(UTC)
    return datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)


def test_a_user_over_the_daily_limit_gets_429_and_nothing_is_stored(quota_stack, quota_api):
    user = quota_api.register("Ada")
    session_id = quota_api.create_session(user)
    spend(quota_stack, user.user_id, LIMIT, datetime.now(UTC))

    response = quota_api.send_message(user, session_id, "One more?")

    assert response.status_code == 429
    body = response.json()
    assert body["limit"] == LIMIT
    assert datetime.fromisoformat(body["resets_at"]) == next_midnight()
    assert "Daily token limit" in body["error"]
    assert 0 < int(response.headers["Retry-After"]) <= 24 * 3600 + 1
    assert quota_api.messages(user, session_id) == []


def test_a_task_run_over_the_daily_limit_gets_429_and_starts_nothing(quota_stack, quota_api):
    user = quota_api.register("Ada")
    tasks = quota_api.call("GET", "/user_task", user.token).json()["user_tasks"]
    execution = quota_api.call(
        "PUT",
        "/user_task_execution",
        user.token,
        json={"user_task_pk": tasks[0]["user_task_pk"]},
    ).json()
    spend(quota_stack, user.user_id, LIMIT + 5, datetime.now(UTC))

    response = quota_api.call(
        "POST",
        "/user_task_execution_run",
        user.token,
        json={"user_task_execution_pk": execution["user_task_execution_pk"], "inputs": []},
    )

    assert response.status_code == 429
    assert response.json()["limit"] == LIMIT
    assert quota_api.messages(user, execution["session_id"]) == []
    stored = quota_api.call(
        "GET",
        "/user_task_execution",
        user.token,
        params={"user_task_execution_pk": execution["user_task_execution_pk"]},
    ).json()
    assert stored["start_date"] is None


def test_yesterdays_usage_does_not_count_today(quota_stack, quota_api):
    user = quota_api.register("Ada")
    session_id = quota_api.create_session(user)
    midnight = next_midnight() - timedelta(days=1)
    spend(quota_stack, user.user_id, 10 * LIMIT, midnight - timedelta(seconds=1))

    response = quota_api.send_message(user, session_id, "A new day [llm:words=3]")

    assert response.status_code == 200, response.text


def test_a_user_under_the_limit_is_answered_and_the_answer_counts(quota_stack, quota_api):
    user = quota_api.register("Ada")
    session_id = quota_api.create_session(user)
    spend(quota_stack, user.user_id, LIMIT - 1, datetime.now(UTC))

    first = quota_api.send_message(user, session_id, "Still room [llm:words=3]")
    answered = _wait_for_reply(quota_api, user, session_id)
    second = quota_api.send_message(user, session_id, "And now?")

    assert first.status_code == 200
    assert answered["message"]["usage"]["completion_tokens"] > 0
    assert second.status_code == 429


def test_another_user_is_not_limited_by_the_first_users_usage(quota_stack, quota_api):
    spender, other = quota_api.register("Ada"), quota_api.register("Bob")
    spend(quota_stack, spender.user_id, 10 * LIMIT, datetime.now(UTC))

    response = quota_api.send_message(other, quota_api.create_session(other), "Hi")

    assert response.status_code == 200


def _wait_for_reply(api: Api, user, session_id: str) -> dict:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        replies = [m for m in api.messages(user, session_id) if m["sender"] == "mojo"]
        if replies:
            return replies[0]
        time.sleep(0.1)
    raise TimeoutError("no assistant reply")
