"""Structured logs: one turn followed from the HTTP request to the last emit by its ids,
in the JSON log files of the test stack's web node and worker (LOG_FORMAT=json)."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import requests

from tests.support.processes import wait_until


def json_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON log lines of a process (its banner and warnings are plain text)."""
    lines = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line being written right now
    return lines


def with_field(lines: list[dict[str, Any]], name: str, value: str) -> list[dict[str, Any]]:
    return [line for line in lines if line.get(name) == value]


def test_a_turn_is_followed_from_request_to_ack_by_its_request_and_session_ids(
    stack, api, user, session_id, connect
):
    client = connect(user, session_id, ack=True)
    request_id = f"trace-{secrets.token_hex(8)}"
    web_log, worker_log = stack.web_nodes[0].log_path, stack.workers[0].log_path

    response = api.call(
        "PUT",
        "/user_message",
        user.token,
        json={"session_id": session_id, "message_id": secrets.token_hex(8), "text": "Trace me"},
        headers={"X-Request-ID": request_id},
    )
    reply = client.wait_for("mojo_message")
    acked = f"mojo_message {reply['message_pk']} acknowledged"
    wait_until(
        lambda: any(acked in line["message"] for line in json_lines(web_log)), 10, "the ack line"
    )
    wait_until(
        lambda: any(
            "answered" in line["message"]
            for line in with_field(json_lines(worker_log), "request_id", request_id)
        ),
        10,
        "the worker's last line of the turn",
    )

    assert response.headers["X-Request-ID"] == request_id
    [request_line] = [
        line
        for line in with_field(json_lines(web_log), "request_id", request_id)
        if line["logger"] == "system1.http"
    ]
    assert request_line["message"].startswith("PUT /user_message 200")
    assert request_line["session_id"] == session_id
    turn_lines = with_field(json_lines(worker_log), "request_id", request_id)
    assert {line["task_name"] for line in turn_lines} >= {"system1.assistant_turn"}
    assert all(line["session_id"] == session_id for line in turn_lines)
    [turn_task_id] = {
        line["task_id"] for line in turn_lines if line["task_name"] == "system1.assistant_turn"
    }
    delivered = f"delivered mojo_message {reply['message_pk']} to "
    delivered_lines = [line for line in turn_lines if line["message"].startswith(delivered)]
    assert [line["task_id"] for line in delivered_lines] == [turn_task_id]
    ack_lines = [line for line in json_lines(web_log) if acked in line["message"]]
    assert [line["session_id"] for line in ack_lines] == [session_id]


def test_a_request_without_an_id_gets_a_new_one_in_the_response(stack):
    first = requests.get(stack.base_url + "/health", timeout=5).headers["X-Request-ID"]
    second = requests.get(stack.base_url + "/health", timeout=5).headers["X-Request-ID"]

    assert first and second and first != second


def test_a_request_id_that_is_not_a_plain_token_is_replaced(stack):
    unsafe = "abc def\u00e9" + "x" * 200

    response = requests.get(
        stack.base_url + "/health", headers={"X-Request-ID": unsafe.encode()}, timeout=5
    )

    assert response.headers["X-Request-ID"] not in ("", unsafe)
    assert len(response.headers["X-Request-ID"]) <= 128
