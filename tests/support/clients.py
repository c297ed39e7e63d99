"""Real clients: `requests` for REST and `python-socketio` for Socket.IO."""

from __future__ import annotations

import queue
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import requests
import socketio

# What a Mojodex client returns to acknowledge each event.
ACK_KEYS = {"mojo_message": "message_pk", "draft_message": "produced_text_version_pk"}


@dataclass
class User:
    email: str
    password: str
    token: str
    user_id: str


class Api:
    """A REST client for one base URL; `call` returns the raw response."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.http = requests.Session()

    def call(
        self, method: str, path: str, token: str | None = None, **kwargs: Any
    ) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if token is not None:
            headers["Authorization"] = token
        kwargs.setdefault("timeout", 10)
        return self.http.request(method, self.base_url + path, headers=headers, **kwargs)

    def register(self, name: str = "Ada") -> User:
        email = f"{name.lower()}-{secrets.token_hex(6)}@example.com"
        password = "correct horse battery"
        response = self.call(
            "PUT", "/user", json={"email": email, "password": password, "name": name}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        return User(email, password, body["token"], body["user_id"])

    def create_session(self, user: User) -> str:
        response = self.call("PUT", "/session", user.token, json={"platform": "test"})
        assert response.status_code == 200, response.text
        return response.json()["session_id"]

    def send_message(
        self, user: User, session_id: str, text: str, message_id: str | None = None
    ) -> requests.Response:
        return self.call(
            "PUT",
            "/user_message",
            user.token,
            json={
                "session_id": session_id,
                "message_id": message_id or secrets.token_hex(8),
                "text": text,
            },
        )

    def start_task(self, user: User, task_name: str, inputs: list[dict[str, str]]) -> dict:
        """A new execution of the user's task `task_name`, run with `inputs` (its first turn
        starts); the execution as PUT /user_task_execution returned it."""
        tasks = self.call("GET", "/user_task", user.token).json()["user_tasks"]
        user_task_pk = next(t["user_task_pk"] for t in tasks if t["task_name"] == task_name)
        response = self.call(
            "PUT", "/user_task_execution", user.token, json={"user_task_pk": user_task_pk}
        )
        assert response.status_code == 200, response.text
        execution = response.json()
        response = self.call(
            "POST",
            "/user_task_execution_run",
            user.token,
            json={"user_task_execution_pk": execution["user_task_execution_pk"], "inputs": inputs},
        )
        assert response.status_code == 200, response.text
        return execution

    def messages(self, user: User, session_id: str, **params: Any) -> list[dict[str, Any]]:
        response = self.call(
            "GET", "/message", user.token, params={"session_id": session_id, **params}
        )
        assert response.status_code == 200, response.text
        return response.json()["messages"]


class SocketClient:
    """A python-socketio client that records every event it receives.

    By default it acknowledges `mojo_message` and `draft_message` the way
    Mojodex clients do (the handler returns {session_id, message_pk} or
    {session_id, produced_text_version_pk}); `ack=False` makes it silent.
    """

    def __init__(self, base_url: str, token: str | None, ack: bool = True):
        self.base_url = base_url
        self.token = token
        self.ack = ack
        # A test may answer acks differently (e.g. with the wrong message_pk).
        self.ack_override: Callable[[dict[str, Any]], Any] | None = None
        self.sio = socketio.Client(reconnection=False)
        self.received: list[tuple[str, Any, float]] = []
        self._queue: queue.Queue[tuple[str, Any, float]] = queue.Queue()
        self._lock = threading.Lock()
        self.sio.on("*", self._on_event)

    def _on_event(self, event: str, data: Any = None) -> Any:
        item = (event, data, time.monotonic())
        with self._lock:
            self.received.append(item)
        self._queue.put(item)
        if event in ACK_KEYS and isinstance(data, dict):
            if self.ack_override is not None:
                return self.ack_override(data)
            if self.ack:
                key = ACK_KEYS[event]
                return {"session_id": data.get("session_id"), key: data.get(key)}
        return None

    def connect(self) -> SocketClient:
        auth = {"token": self.token} if self.token is not None else None
        self.sio.connect(self.base_url, auth=auth, transports=["websocket"], wait_timeout=10)
        return self

    def start_session(self, session_id: str) -> Any:
        return self.sio.call("start_session", {"session_id": session_id, "version": "0.0.1"})

    def wait_for(
        self,
        event: str,
        predicate: Callable[[Any], bool] = lambda _data: True,
        timeout: float = 15.0,
    ) -> Any:
        """The next received `event` whose payload satisfies `predicate`."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                seen = [name for name, _, _ in self.received]
                raise TimeoutError(f"no {event!r} within {timeout}s; received: {seen}")
            try:
                name, data, _at = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if name == event and predicate(data):
                return data

    def events(self, event: str) -> list[Any]:
        with self._lock:
            return [data for name, data, _ in self.received if name == event]

    def close(self) -> None:
        if self.sio.connected:
            self.sio.disconnect()


def assert_nothing_left_to_deliver(stack: Any, user: User, session_id: str) -> None:
    """The client's acks were stored: a socket joining now gets no replay."""
    client = SocketClient(stack.base_url, user.token, ack=False).connect()
    try:
        client.start_session(session_id)
        for event in ("mojo_message", "draft_message"):
            with pytest.raises(TimeoutError):
                client.wait_for(event, timeout=1.5)
    finally:
        client.close()


def only_session(api: Api, user: User) -> str:
    sessions = api.call("GET", "/session", user.token).json()["sessions"]
    assert len(sessions) == 1, sessions
    return sessions[0]["session_id"]
