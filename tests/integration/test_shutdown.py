"""Graceful shutdown, as `docker stop` does it: SIGTERM to the container's process.

A Celery worker stops taking tasks, finishes the turns it is running and gives back
the tasks it held but had not started (the resend sweep's countdown); a web node stops accepting
connections, closes its Socket.IO connections and exits without waiting for its
graceful timeout.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
import requests

from devtools.embedded import free_port
from tests.support.clients import Api, SocketClient
from tests.support.metrics import scrape, value
from tests.support.processes import http_ok, wait_until, web_node

GUNICORN_GRACEFUL_TIMEOUT_S = 10  # web/gunicorn_conf.py


def test_a_worker_stopped_mid_turn_finishes_it_and_gives_back_what_it_held(make_stack):
    isolated = make_stack()
    api = Api(isolated.base_url)
    user = api.register("Ada")
    session_id = api.create_session(user)
    # No acks: the first reply stays due, so the resend sweep's countdown task is held.
    client = SocketClient(isolated.base_url, user.token, ack=False).connect()
    try:
        client.start_session(session_id)
        api.send_message(user, session_id, "[llm:reply=First.]")
        first = client.wait_for("mojo_message")
        assert value(scrape(isolated.base_url), "system1_broker_unacked_tasks") >= 1
        api.send_message(user, session_id, "[llm:words=40] [llm:token_interval_ms=50]")
        client.wait_for("mojo_token")
        worker = isolated.workers[0]

        os.kill(worker.pid, signal.SIGTERM)

        second = client.wait_for("mojo_message", lambda m: m["message_pk"] != first["message_pk"])
        assert worker.popen.wait(20) == 0, worker.log_tail()
        assert len(second["text"].split()) >= 40  # the whole answer, not a cut-off one
        samples = scrape(isolated.base_url)
        assert value(samples, "system1_broker_unacked_tasks") == 0  # nothing left held
        assert value(samples, "system1_queue_length", queue="delivery") >= 1  # the sweep
        seen = len(client.events("mojo_message"))

        isolated.start_worker(beat=False)  # its replacement runs what was given back

        wait_until(
            lambda: value(scrape(isolated.base_url), "system1_queue_length", queue="delivery") == 0,
            20,
            "the replacement worker to take the given-back sweep",
        )
        resent = client.wait_for(
            "mojo_message", lambda m: len(client.events("mojo_message")) > seen
        )
        assert resent["message_pk"] in {first["message_pk"], second["message_pk"]}
        delivered = {m["message_pk"] for m in client.events("mojo_message")}
        assert delivered == {first["message_pk"], second["message_pk"]}
        replies = [m["message_pk"] for m in api.messages(user, session_id) if m["sender"] == "mojo"]
        assert sorted(replies) == sorted(delivered)
    finally:
        client.close()


def test_a_stopped_web_node_closes_its_sockets_and_exits_before_its_graceful_timeout(
    stack, user, run_dir
):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    node = web_node("web-stopped", port, stack.env, run_dir).start()
    client = SocketClient(url, user.token)
    disconnected = threading.Event()
    client.sio.on("disconnect", lambda *_: disconnected.set())
    try:
        wait_until(lambda: http_ok(url + "/health"), 30, "the web node")
        client.connect()
        started = time.monotonic()

        os.kill(node.pid, signal.SIGTERM)

        assert disconnected.wait(5), node.log_tail()
        assert node.popen.wait(GUNICORN_GRACEFUL_TIMEOUT_S) == 0, node.log_tail()
        assert time.monotonic() - started < GUNICORN_GRACEFUL_TIMEOUT_S - 3
        with pytest.raises(requests.ConnectionError):
            requests.get(url + "/health", timeout=2)
    finally:
        client.close()
        node.stop()
