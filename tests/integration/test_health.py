"""GET /health and behaviour when a dependency is down.

The fault tests run an isolated stack (its own embedded Redis, web node and
worker) so that stopping Redis does not disturb the other tests.
"""

from __future__ import annotations

import time

import pytest
import requests

from tests.support.clients import Api
from tests.support.stack import Stack


@pytest.fixture
def isolated(make_stack) -> Stack:
    return make_stack()


def test_health_is_ok_when_database_redis_and_a_worker_answer(stack):
    response = requests.get(stack.base_url + "/health", timeout=5)

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["down"] == []
    assert body["checks"]["database"]["ok"]
    assert body["checks"]["redis"]["ok"]
    assert body["checks"]["workers"]["answered"]


def test_health_is_503_naming_redis_when_redis_is_stopped(isolated):
    isolated.redis_server.stop()

    started = time.monotonic()
    response = requests.get(isolated.base_url + "/health", timeout=10)

    assert response.status_code == 503
    assert "redis" in response.json()["down"]
    assert response.json()["checks"]["database"]["ok"]
    assert time.monotonic() - started < 5


def test_health_is_503_naming_workers_when_no_worker_answers(isolated):
    for worker in isolated.workers:
        worker.stop()

    response = requests.get(isolated.base_url + "/health", timeout=10)

    assert response.status_code == 503
    assert response.json()["down"] == ["workers"]


def test_user_message_is_refused_with_503_and_not_stored_when_redis_is_down(isolated):
    api = Api(isolated.base_url)
    user = api.register("Ada")
    session_id = api.create_session(user)
    isolated.redis_server.stop()

    started = time.monotonic()
    response = api.send_message(user, session_id, "Anyone?")

    assert response.status_code == 503
    assert "error" in response.json()
    assert time.monotonic() - started < 10
    assert api.messages(user, session_id) == []
