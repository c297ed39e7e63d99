"""Flower, as operators run it (`celery -A worker flower` with basic auth from the
environment), against the test stack's broker: it sees the turns and both queues."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from devtools.embedded import free_port
from tests.support.clients import Api, SocketClient, User
from tests.support.processes import BIN, ChildProcess, wait_until
from tests.support.stack import Stack, isolated_stack

CREDENTIALS = ("operator", "flower-test-password")


class Flower:
    def __init__(self, process: ChildProcess, url: str):
        self.process = process
        self.url = url

    def get(self, path: str, auth: tuple[str, str] | None = CREDENTIALS, **params: Any):
        return requests.get(self.url + path, auth=auth, params=params, timeout=10)

    def answers(self) -> bool:
        try:
            return self.get("/api/workers").status_code == 200
        except requests.RequestException:
            return False


@pytest.fixture(scope="module")
def quiet_stack(
    database_url: str, llm_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """A stack of its own: Flower follows only this module's tasks, not those of every
    other test on the shared stack."""
    stack = isolated_stack(database_url, llm_url, tmp_path_factory.mktemp("flower"), "flower")
    yield stack
    stack.stop()


@pytest.fixture
def api(quiet_stack: Stack) -> Api:
    return Api(quiet_stack.base_url)


@pytest.fixture
def connect(quiet_stack: Stack, sockets: list[SocketClient]):
    def _connect(user: User, session_id: str) -> SocketClient:
        client = SocketClient(quiet_stack.base_url, user.token).connect()
        sockets.append(client)
        assert client.start_session(session_id)["joined"]
        return client

    return _connect


@pytest.fixture(scope="module")
def flower(quiet_stack: Stack, run_dir: Path) -> Iterator[Flower]:
    stack = quiet_stack
    port = free_port()
    env = {**stack.env, "FLOWER_BASIC_AUTH": ":".join(CREDENTIALS)}
    process = ChildProcess(
        "flower",
        [str(BIN / "celery"), "-A", "worker", "flower", "--address=127.0.0.1", f"--port={port}"],
        env,
        run_dir,
    ).start()
    running = Flower(process, f"http://127.0.0.1:{port}")
    try:
        wait_until(running.answers, 30, "Flower")
    except TimeoutError:
        process.stop()
        raise RuntimeError(f"Flower did not start:\n{process.log_tail()}") from None
    yield running
    process.stop()


def test_flower_shows_a_finished_assistant_turn(flower, api, user, session_id, connect):
    # Flower answers HTTP before its event receiver is subscribed: wait until it
    # has seen a task (beat's sweep runs every few seconds) before starting ours.
    wait_until(
        lambda: bool(flower.get("/api/tasks", taskname="system1.recover_lost_work").json()),
        30,
        "Flower to receive task events",
    )
    client = connect(user, session_id)

    def finished_turns(user_message_pk: int) -> list[dict[str, Any]]:
        tasks = flower.get("/api/tasks", taskname="system1.assistant_turn").json()
        return [
            t
            for t in tasks.values()
            if t.get("args") == f"[{user_message_pk}]" and t.get("state") == "SUCCESS"
        ]

    sent = api.send_message(user, session_id, "[llm:reply=Seen by Flower.]")
    client.wait_for("mojo_message", lambda m: m["text"] == "Seen by Flower.")
    user_message_pk = sent.json()["message_pk"]
    wait_until(lambda: bool(finished_turns(user_message_pk)), 20, "Flower to list the turn")
    turn = finished_turns(user_message_pk)[0]
    assert turn["name"] == "system1.assistant_turn"
    assert turn["routing_key"] == "turns"  # from the task-sent event of the web node


def test_flower_lists_the_turns_and_delivery_queues_a_worker_consumes(flower):
    def consumed_queues() -> set[str]:
        workers = flower.get("/api/workers", refresh="1").json()
        return {q["name"] for info in workers.values() for q in info.get("active_queues", [])}

    wait_until(lambda: {"turns", "delivery"} <= consumed_queues(), 15, "the workers' queues")
    lengths = flower.get("/api/queues/length").json()["active_queues"]
    assert {q["name"] for q in lengths} >= {"turns", "delivery"}


def test_flower_refuses_requests_without_the_credentials(flower):
    assert flower.get("/api/workers", auth=None).status_code == 401
    assert flower.get("/api/workers", auth=("operator", "wrong")).status_code == 401
