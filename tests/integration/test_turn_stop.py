"""Stopping an assistant turn (POST /assistant_turn_stop), over the real stack: the LLM
sees its stream closed, the partial answer is stored as stopped and delivered once."""

from __future__ import annotations

import secrets
import threading
import time

import pytest
import requests

from devtools.scripted_llm import scripted_reply
from tests.support.clients import Api, SocketClient
from tests.support.metrics import settled_scrape, value

SLOW = "[llm:words=60] [llm:token_interval_ms=100]"


def llm_stream(llm_url: str, marker: str) -> dict:
    """The scripted LLM's record of the stream whose answer starts by echoing `marker`."""
    streams = requests.get(llm_url.removesuffix("/v1") + "/_streams", timeout=5).json()
    found = [s for s in streams["streams"] if marker in s["head"]]
    assert len(found) == 1, found
    return found[0]


def stop(api: Api, user, session_id: str):
    return api.call("POST", "/assistant_turn_stop", user.token, json={"session_id": session_id})


def start_slow_turn(api, user, session_id, client: SocketClient) -> tuple[str, str]:
    """Send a message answered slowly; return once a few tokens arrived."""
    marker = secrets.token_hex(4)
    text = f"Story {marker} {SLOW}"
    assert api.send_message(user, session_id, text).status_code == 200
    client.wait_for("mojo_token", lambda t: len(t["text"].split()) >= 4)
    return marker, text


def test_a_stop_during_a_slow_stream_closes_the_llm_stream_within_a_second(
    api, user, session_id, connect, llm_url
):
    client = connect(user, session_id)
    marker, text = start_slow_turn(api, user, session_id, client)

    asked_at = time.monotonic()
    response = stop(api, user, session_id)
    message = client.wait_for("mojo_message")
    ended_at = time.monotonic()

    assert response.status_code == 200, response.text
    assert response.json() == {"session_id": session_id, "message_pk": message["message_pk"]}
    assert ended_at - asked_at < 1.0
    assert message["stopped"] is True
    full = scripted_reply([{"role": "user", "content": text}])
    assert message["text"] and full.startswith(message["text"]) and message["text"] != full
    time.sleep(0.5)  # the LLM notices the closed connection at its next write
    stream = llm_stream(llm_url, marker)
    assert stream["closed_by_client"] is True
    assert len(message["text"].split()) <= stream["chunks"] < 60


def test_a_stop_while_the_llm_has_not_answered_yet_ends_the_turn_at_once(
    api, user, session_id, connect, llm_url
):
    client = connect(user, session_id)
    marker = secrets.token_hex(4)
    # A model that thinks for 4 s before its first token, as reasoning models do.
    sent = api.send_message(user, session_id, f"Think {marker} [llm:ttft_ms=4000]")
    assert sent.status_code == 200
    time.sleep(0.5)  # the turn is claimed and waits on the LLM

    asked_at = time.monotonic()
    response = stop(api, user, session_id)
    message = client.wait_for("mojo_message")
    ended_at = time.monotonic()

    assert response.status_code == 200, response.text
    assert response.json() == {"session_id": session_id, "message_pk": message["message_pk"]}
    assert ended_at - asked_at < 1.0
    assert message["stopped"] is True and message["text"] == ""
    time.sleep(4.5)  # past the LLM's first token: the turn shows nothing of it
    assert client.events("mojo_token") == []
    assert [m["message_pk"] for m in client.events("mojo_message")] == [message["message_pk"]]
    assert len(api.messages(user, session_id)) == 2
    assert llm_stream(llm_url, marker)["closed_by_client"] is True


def test_the_stopped_answer_is_stored_with_stopped_and_its_usage(api, user, session_id, connect):
    client = connect(user, session_id)
    start_slow_turn(api, user, session_id, client)

    stop(api, user, session_id)
    message = client.wait_for("mojo_message")

    stored = api.messages(user, session_id)[0]
    assert stored["message_pk"] == message["message_pk"]
    assert stored["message"]["stopped"] is True
    assert stored["message"]["text"] == message["text"]
    # The LLM sent no usage (the stream was cut): estimated from the texts.
    assert stored["message"]["usage"]["estimated"] is True
    assert stored["message"]["usage"]["completion_tokens"] > 0


def test_a_stop_sent_to_one_web_node_stops_a_turn_watched_on_another(make_stack, llm_url):
    stack = make_stack(web_nodes=2)
    watching, stopping = Api(stack.url(0)), Api(stack.url(1))
    user = watching.register("Ada")
    session_id = watching.create_session(user)
    client = SocketClient(stack.url(0), user.token).connect()
    try:
        assert client.start_session(session_id)["joined"] is True
        start_slow_turn(watching, user, session_id, client)

        response = stop(stopping, user, session_id)
        message = client.wait_for("mojo_message", timeout=5)
    finally:
        client.close()

    assert response.status_code == 200, response.text
    assert message["stopped"] is True
    assert response.json()["message_pk"] == message["message_pk"]


def test_a_queued_turn_stopped_before_it_starts_ends_with_an_empty_text(make_stack):
    stack = make_stack(workers=())  # no worker: the turn stays queued
    api = Api(stack.base_url)
    user = api.register("Ada")
    session_id = api.create_session(user)
    client = SocketClient(stack.base_url, user.token).connect()
    try:
        assert client.start_session(session_id)["joined"] is True
        assert api.send_message(user, session_id, "Never answered").status_code == 200

        response = stop(api, user, session_id)
        message = client.wait_for("mojo_message", timeout=5)
        # A worker that takes the queued task now finds the turn answered.
        stack.start_worker()
        stack.wait_healthy()
        time.sleep(2)
        messages = client.events("mojo_message")
    finally:
        client.close()

    assert response.status_code == 200, response.text
    assert response.json()["message_pk"] == message["message_pk"]
    assert message["stopped"] is True
    assert message["text"] == ""
    assert {m["message_pk"] for m in messages} == {message["message_pk"]}
    assert [m["sender"] for m in api.messages(user, session_id)] == ["mojo", "user"]


def test_stopping_twice_gives_one_message(api, user, session_id, connect):
    client = connect(user, session_id)
    start_slow_turn(api, user, session_id, client)
    answers: list = []

    def stop_once() -> None:
        answers.append(stop(Api(api.base_url), user, session_id))

    threads = [threading.Thread(target=stop_once) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    message = client.wait_for("mojo_message")
    time.sleep(1)

    assert sorted(r.status_code for r in answers) in ([200, 200], [200, 409])
    assert {r.json()["message_pk"] for r in answers if r.status_code == 200} == {
        message["message_pk"]
    }
    assert {m["message_pk"] for m in client.events("mojo_message")} == {message["message_pk"]}
    assert len(api.messages(user, session_id)) == 2


@pytest.mark.parametrize("delay_s", [0.0, 0.05, 0.15])
def test_a_stop_racing_the_turns_end_gives_one_message(api, user, session_id, connect, delay_s):
    client = connect(user, session_id)
    assert api.send_message(user, session_id, "Quick [llm:words=3]").status_code == 200
    time.sleep(delay_s)

    response = stop(api, user, session_id)
    message = client.wait_for("mojo_message")
    time.sleep(1)

    assert response.status_code in (200, 409), response.text
    if response.status_code == 200:
        assert response.json()["message_pk"] == message["message_pk"]
    assert {m["message_pk"] for m in client.events("mojo_message")} == {message["message_pk"]}
    assert len(api.messages(user, session_id)) == 2


def test_no_running_turn_is_a_409(api, user, session_id, connect):
    empty = stop(api, user, session_id)
    client = connect(user, session_id)
    api.send_message(user, session_id, "Hello [llm:words=3]")
    client.wait_for("mojo_message")

    answered = stop(api, user, session_id)

    assert empty.status_code == 409
    assert answered.status_code == 409
    assert "No assistant turn" in answered.json()["error"]


def test_another_users_session_cannot_be_stopped(api, user, other_user, session_id, connect):
    client = connect(user, session_id)
    start_slow_turn(api, user, session_id, client)

    response = stop(api, other_user, session_id)
    message = client.wait_for("mojo_message")

    assert response.status_code == 403
    assert "stopped" not in message


def test_a_stop_in_a_task_session_stores_no_new_version(api, user, connect):
    tasks = api.call("GET", "/user_task", user.token).json()["user_tasks"]
    user_task_pk = next(t["user_task_pk"] for t in tasks if t["task_name"] == "Write an email")
    execution = api.call(
        "PUT", "/user_task_execution", user.token, json={"user_task_pk": user_task_pk}
    ).json()
    session_id = execution["session_id"]
    client = connect(user, session_id)
    api.call(
        "POST",
        "/user_task_execution_run",
        user.token,
        json={
            "user_task_execution_pk": execution["user_task_execution_pk"],
            "inputs": [{"input_name": "recipient", "value": "Sarah"}],
        },
    )
    client.wait_for("mojo_message")
    api.send_message(user, session_id, f"Friendly please {SLOW}")
    client.wait_for("draft_token", lambda t: len(t["produced_text"].split()) >= 4)

    response = stop(api, user, session_id)
    message = client.wait_for("mojo_message", lambda m: m.get("stopped"))
    time.sleep(1)

    assert response.status_code == 200, response.text
    assert message["user_task_execution_pk"] == execution["user_task_execution_pk"]
    assert not client.events("draft_message")
    stored = api.call(
        "GET",
        "/user_task_execution",
        user.token,
        params={"user_task_execution_pk": execution["user_task_execution_pk"]},
    ).json()
    assert stored["produced_text_pk"] is None


def test_stopped_turns_are_counted_in_the_metrics(api, user, session_id, connect, stack):
    before = value(settled_scrape(stack.base_url), "system1_turns_stopped_total")
    client = connect(user, session_id)
    start_slow_turn(api, user, session_id, client)

    stop(api, user, session_id)
    client.wait_for("mojo_message")

    after = value(settled_scrape(stack.base_url), "system1_turns_stopped_total")
    assert after == before + 1
