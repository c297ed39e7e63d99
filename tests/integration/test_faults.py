"""Delivery and turns survive what production throws at them: a worker killed
mid-stream, restarts of the web node, the worker, Redis and PostgreSQL, several web nodes.

Each test builds an isolated stack (own Redis and database) so that it can
break things without disturbing the others.
"""

from __future__ import annotations

import signal
import time

import pytest
import requests

from devtools.embedded import EmbeddedPostgres, free_port
from tests.support.clients import Api, SocketClient
from tests.support.processes import wait_until
from tests.support.stack import isolated_stack

FAST_RESEND = {"RESEND_INTERVAL_S": "1"}


@pytest.fixture
def second_node(stack) -> str:
    """A second web node on the shared test stack (same Redis, same database)."""
    if len(stack.web_nodes) < 2:
        stack.start_web_node()
    return stack.url(1)


def conversation(stack, sockets, ack=True):
    """A new user with a session on `stack`, and a socket joined to it."""
    api = Api(stack.base_url)
    user = api.register()
    session_id = api.create_session(user)
    client = open_socket(stack.base_url, user, session_id, ack=ack, sockets=sockets)
    return api, user, session_id, client


def open_socket(url, user, session_id, ack=True, sockets=None) -> SocketClient:
    client = SocketClient(url, user.token, ack=ack).connect()
    if sockets is not None:
        sockets.append(client)
    assert client.start_session(session_id)["joined"]
    return client


def test_client_on_another_web_node_gets_tokens_and_the_message(
    api, user, session_id, second_node, sockets
):
    on_b = open_socket(second_node, user, session_id, sockets=sockets)

    api.send_message(user, session_id, "Across nodes [llm:words=30] [llm:token_interval_ms=5]")

    message = on_b.wait_for("mojo_message")
    assert on_b.events("user_message_reception")
    assert on_b.events("mojo_token")[-1]["text"] == message["text"]


def test_ack_collected_by_another_web_node_stops_the_resend(
    api, user, session_id, second_node, sockets
):
    on_a = open_socket(api.base_url, user, session_id, ack=False, sockets=sockets)
    on_b = open_socket(second_node, user, session_id, ack=True, sockets=sockets)

    api.send_message(user, session_id, "[llm:reply=Acked on B.]")
    on_b.wait_for("mojo_message")
    on_a.wait_for("mojo_message")

    with pytest.raises(TimeoutError):
        on_a.wait_for("mojo_message", timeout=8)


def test_worker_killed_mid_stream_still_gives_exactly_one_answer(make_stack, sockets):
    stack = make_stack(workers=("delivery", "turns"))
    api, user, session_id, client = conversation(stack, sockets)
    text = "Long answer [llm:words=80] [llm:token_interval_ms=100]"

    sent = api.send_message(user, session_id, text).json()
    client.wait_for("mojo_token")
    turns_worker = stack.workers[1]
    turns_worker.signal_group(signal.SIGKILL)
    stack.start_worker("turns", beat=False)

    message = client.wait_for("mojo_message", timeout=60)
    with pytest.raises(TimeoutError):
        client.wait_for("mojo_message", timeout=8)
    assert message["text"].startswith("Echo: Long answer.")
    replies = [m for m in api.messages(user, session_id) if m["sender"] == "mojo"]
    assert [m["message_pk"] for m in replies] == [message["message_pk"]]
    assert sent["message_pk"] != message["message_pk"]


def test_resend_survives_a_restart_of_the_web_node(make_stack, sockets):
    stack = make_stack(**FAST_RESEND)
    api, user, session_id, client = conversation(stack, sockets, ack=False)
    api.send_message(user, session_id, "[llm:reply=Still here.]")
    first = client.wait_for("mojo_message")
    client.close()

    stack.restart_web_node(0)
    again = open_socket(stack.base_url, user, session_id, ack=False, sockets=sockets)

    replayed = again.wait_for("mojo_message", timeout=5)
    resent = again.wait_for("mojo_message", timeout=5)
    assert replayed["message_pk"] == resent["message_pk"] == first["message_pk"]


def test_resend_survives_a_restart_of_the_worker(make_stack, sockets):
    stack = make_stack(**FAST_RESEND)
    api, user, session_id, client = conversation(stack, sockets, ack=False)
    api.send_message(user, session_id, "[llm:reply=Keep trying.]")
    first = client.wait_for("mojo_message")

    stack.workers[0].stop()
    stack.start_worker()
    seen_before = len(client.events("mojo_message"))

    resent = client.wait_for(
        "mojo_message",
        lambda m: len(client.events("mojo_message")) > seen_before,
        timeout=30,
    )
    assert resent["message_pk"] == first["message_pk"]


def test_resends_go_on_after_the_delivery_worker_is_killed(make_stack, sockets):
    # The killed worker held the resend sweep's countdown task: it comes back only after
    # the broker's visibility timeout, so the sweep's lease must run out and beat's
    # recovery start another.
    stack = make_stack(workers=("delivery", "turns"), **FAST_RESEND)
    api, user, session_id, client = conversation(stack, sockets, ack=False)
    api.send_message(user, session_id, "[llm:reply=Killed but not forgotten.]")
    first = client.wait_for("mojo_message")
    client.wait_for("mojo_message", lambda m: len(client.events("mojo_message")) >= 2)

    stack.workers[0].signal_group(signal.SIGKILL)
    stack.start_worker("delivery", beat=True)
    seen_before = len(client.events("mojo_message"))

    resent = client.wait_for(
        "mojo_message",
        lambda m: len(client.events("mojo_message")) > seen_before,
        timeout=40,
    )
    assert resent["message_pk"] == first["message_pk"]


def test_resend_stops_after_the_maximum_number_of_tries(make_stack, sockets):
    stack = make_stack(RESEND_INTERVAL_S="0.5", RESEND_MAX_TRIES="3")
    api, user, session_id, client = conversation(stack, sockets, ack=False)

    api.send_message(user, session_id, "[llm:reply=Three more times.]")
    client.wait_for("mojo_message")
    for _ in range(3):
        client.wait_for("mojo_message", timeout=5)

    with pytest.raises(TimeoutError):
        client.wait_for("mojo_message", timeout=5)
    assert len(client.events("mojo_message")) == 4


def test_stack_recovers_from_a_redis_restart_without_losing_messages(make_stack, sockets):
    stack = make_stack(**FAST_RESEND)
    api, user, session_id, client = conversation(stack, sockets, ack=True)
    api.send_message(user, session_id, "[llm:reply=Before the outage.]")
    client.wait_for("mojo_message")

    # The second turn is streaming while Redis goes away and comes back empty.
    api.send_message(user, session_id, "During [llm:words=60] [llm:token_interval_ms=100]")
    client.wait_for("mojo_token")
    stack.redis_server.restart()
    during = client.wait_for(
        "mojo_message", lambda m: m["text"].startswith("Echo: During"), timeout=60
    )

    def send_after() -> bool:
        response = api.send_message(
            user, session_id, "[llm:reply=After the outage.]", message_id="after-outage"
        )
        return response.status_code == 200

    wait_until(send_after, 30, "PUT /user_message to succeed again")
    after = client.wait_for("mojo_message", lambda m: m["text"] == "After the outage.", 60)

    texts = [m["message"]["text"] for m in api.messages(user, session_id)]
    assert texts[0] == after["text"]
    assert during["text"] in texts
    assert "Before the outage." in texts
    assert len(texts) == 6
    health = requests.get(stack.base_url + "/health", timeout=5)
    assert health.status_code == 200, health.text


@pytest.fixture
def own_postgres(tmp_path):
    """A PostgreSQL server of the test's own, which it may stop and start."""
    server = EmbeddedPostgres(tmp_path / "own-postgres", free_port())
    server.start()
    yield server
    server.stop()


def test_postgres_restart_answers_503_at_once_and_finishes_the_turn_in_flight(
    own_postgres, llm_url, tmp_path, sockets
):
    # A lease far longer than the test: only the turn's own retry can finish it, not the
    # recovery sweep once the lease runs out.
    stack = isolated_stack(
        own_postgres.url("postgres"), llm_url, tmp_path, "pg_restart", TURN_LEASE_S="300"
    )
    try:
        api, user, session_id, client = conversation(stack, sockets)
        api.send_message(user, session_id, "In flight [llm:words=40] [llm:token_interval_ms=50]")
        client.wait_for("mojo_token")

        own_postgres.stop()
        started = time.monotonic()
        down = api.send_message(user, session_id, "[llm:reply=While down.]")
        took = time.monotonic() - started
        time.sleep(3)
        own_postgres.start()

        assert down.status_code == 503, down.text
        assert "error" in down.json()
        assert took < 5
        in_flight = client.wait_for(
            "mojo_message", lambda m: m["text"].startswith("Echo: In flight"), timeout=30
        )

        def send_after() -> bool:
            response = api.send_message(
                user, session_id, "[llm:reply=After the restart.]", message_id="after-restart"
            )
            return response.status_code == 200

        wait_until(send_after, 20, "PUT /user_message to succeed again")
        client.wait_for("mojo_message", lambda m: m["text"] == "After the restart.", 30)
        replies = [m for m in api.messages(user, session_id) if m["sender"] == "mojo"]
        assert [m["message_pk"] for m in replies].count(in_flight["message_pk"]) == 1
        assert len(replies) == 2
        assert requests.get(stack.base_url + "/health", timeout=5).status_code == 200
    finally:
        stack.stop()


def test_joining_a_session_while_postgres_is_down_answers_an_error_at_once(
    own_postgres, llm_url, tmp_path, sockets
):
    stack = isolated_stack(own_postgres.url("postgres"), llm_url, tmp_path, "pg_join")
    try:
        _api, user, session_id, _client = conversation(stack, sockets)
        other = SocketClient(stack.base_url, user.token).connect()
        sockets.append(other)

        own_postgres.stop()
        started = time.monotonic()
        answer = other.start_session(session_id)
        took = time.monotonic() - started
        own_postgres.start()

        assert answer == {"error": "The database is unavailable; try again shortly."}
        assert took < 5
        # The pools recover by themselves once PostgreSQL is back.
        wait_until(
            lambda: other.start_session(session_id).get("joined") is True,
            30,
            "start_session to join once PostgreSQL is back",
        )
    finally:
        stack.stop()
