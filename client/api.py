"""The REST half of the protocol, for the terminal client."""

from __future__ import annotations

import secrets
from typing import Any

import requests

TIMEOUT_S = 15
PLATFORM = "terminal"


class ApiError(Exception):
    """An error answer (`{"error": ...}`) or an unreachable server."""

    def __init__(self, message: str, status: int = 0):
        super().__init__(message)
        self.status = status


class Api:
    def __init__(self, base_url: str):
        self.base_url = base_url.rstrip("/")
        self.token: str | None = None
        self.http = requests.Session()

    def call(self, method: str, path: str, fields: dict[str, Any] | None = None) -> Any:
        headers = {"Authorization": self.token} if self.token else {}
        kwargs: dict[str, Any] = {"headers": headers, "timeout": TIMEOUT_S}
        if fields is not None:
            kwargs["params" if method == "GET" else "json"] = fields
        try:
            response = self.http.request(method, self.base_url + path, **kwargs)
        except requests.RequestException as exc:
            raise ApiError(f"cannot reach {self.base_url}: {exc.__class__.__name__}") from None
        try:
            body = response.json()
        except ValueError:
            body = {}
        if not response.ok:
            message = body.get("error") if isinstance(body, dict) else None
            raise ApiError(
                message or f"the server answered {response.status_code}", response.status_code
            )
        return body

    # Users

    def login(self, email: str, password: str) -> dict[str, Any]:
        user = self.call(
            "POST",
            "/user",
            {"email": email, "password": password, "login_method": "email_password"},
        )
        self.token = user["token"]
        return user

    def register(self, email: str, password: str, name: str) -> dict[str, Any]:
        user = self.call("PUT", "/user", {"email": email, "password": password, "name": name})
        self.token = user["token"]
        return user

    # Chats

    def create_session(self) -> str:
        return self.call("PUT", "/session", {"platform": PLATFORM})["session_id"]

    def sessions(self, count: int = 20) -> list[dict[str, Any]]:
        return self.call("GET", "/session", {"n_sessions": count})["sessions"]

    def messages(self, session_id: str, count: int = 50) -> list[dict[str, Any]]:
        """The session's last messages, oldest first."""
        page = self.call("GET", "/message", {"session_id": session_id, "n_messages": count})
        return list(reversed(page["messages"]))

    def send_message(self, session_id: str, text: str) -> dict[str, Any]:
        return self.call(
            "PUT",
            "/user_message",
            {"session_id": session_id, "message_id": secrets.token_hex(16), "text": text},
        )

    def stop_turn(self, session_id: str) -> dict[str, Any]:
        """Stop the session's running answer (ApiError 409 if none is running)."""
        return self.call("POST", "/assistant_turn_stop", {"session_id": session_id})

    # Tasks

    def user_tasks(self) -> list[dict[str, Any]]:
        tasks = self.call("GET", "/user_task", {"n_user_tasks": 50})["user_tasks"]
        return [task for task in tasks if task.get("enabled", True)]

    def executions(self, count: int = 20) -> list[dict[str, Any]]:
        page = self.call("GET", "/user_task_execution", {"n_user_task_executions": count})
        return page["user_task_executions"]

    def execution(self, user_task_execution_pk: int) -> dict[str, Any]:
        return self.call(
            "GET", "/user_task_execution", {"user_task_execution_pk": user_task_execution_pk}
        )

    def create_execution(self, user_task_pk: int) -> dict[str, Any]:
        return self.call("PUT", "/user_task_execution", {"user_task_pk": user_task_pk})

    def run_execution(self, user_task_execution_pk: int, inputs: list[dict[str, str]]) -> None:
        self.call(
            "POST",
            "/user_task_execution_run",
            {"user_task_execution_pk": user_task_execution_pk, "inputs": inputs},
        )

    def save_draft(self, produced_text_pk: int, production: str, title: str | None) -> dict:
        return self.call(
            "POST",
            "/produced_text",
            {"produced_text_pk": produced_text_pk, "production": production, "title": title},
        )
