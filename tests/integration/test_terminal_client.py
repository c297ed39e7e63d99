"""The terminal client (`python -m client`), run as a person would run it, against
the stack: messages given with --message or on the standard input, answers
streamed, acknowledged, and printed."""

from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
import time
from typing import Any

from tests.support.clients import Api, User, assert_nothing_left_to_deliver, only_session
from tests.support.processes import BIN, ROOT


def run_client(stack: Any, user: User, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    command, *options = args
    env = {**os.environ, "COLUMNS": "160", "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"}
    env.pop("SYSTEM1_PASSWORD", None)
    return subprocess.run(
        [
            *(str(BIN / "python"), "-m", "client", command, "--url", stack.base_url),
            *("--email", user.email, "--password", user.password, "--timeout", "30"),
            *options,
        ],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=90,
    )


def test_a_one_shot_chat_streams_and_acknowledges_the_answer(api, user, stack):
    result = run_client(stack, user, "chat", "--new", "--message", "Hello from a terminal")

    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "logged in as Ada" in out
    assert "you > Hello from a terminal" in out
    session_id = only_session(api, user)
    answer = api.messages(user, session_id)[0]["message"]["text"]
    assert answer.startswith("Echo: Hello from a terminal")
    first_line = answer[:60]
    assert first_line in out
    assert re.search(r"\d+ live updates · acknowledged ✓", out), out
    assert_nothing_left_to_deliver(stack, user, session_id)


def test_messages_on_stdin_continue_a_chat_with_its_history(api, user, stack, session_id):
    first = run_client(stack, user, "chat", "--session", session_id, stdin="One\n")
    assert first.returncode == 0, first.stdout + first.stderr

    again = run_client(stack, user, "chat", "--session", session_id, stdin="Two\n\nThree\n")

    assert again.returncode == 0, again.stdout + again.stderr
    assert "you > One" in again.stdout  # the history
    assert "Echo: Two" in again.stdout and "Echo: Three" in again.stdout
    assert again.stdout.count("acknowledged ✓") == 2
    texts = [m["message"]["text"] for m in api.messages(user, session_id)]
    assert len(texts) == 6
    assert_nothing_left_to_deliver(stack, user, session_id)


def test_a_task_runs_to_a_draft(api, user, stack):
    result = run_client(
        stack,
        user,
        "task",
        "--task",
        "write an email",
        "--input",
        "recipient=Sarah, my manager",
        "--input",
        "purpose=a day off on Friday",
        "--message",
        "Friendly tone",
    )

    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "what tone?" in out
    assert "✎ v1 · Write an email" in out
    assert "Draft for Write an email." in out
    assert "Based on: Friendly tone." in out
    execution = api.call("GET", "/user_task_execution", user.token).json()["user_task_executions"][
        0
    ]
    assert execution["produced_text_version_index"] == 1
    assert_nothing_left_to_deliver(stack, user, execution["session_id"])

    resumed = run_client(
        stack,
        user,
        "task",
        "--execution",
        str(execution["user_task_execution_pk"]),
        "--message",
        "Shorter please",
    )

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "✎ v2 · Write an email" in resumed.stdout
    assert "Based on: Shorter please." in resumed.stdout


def test_register_then_list(api, stack):
    email = f"newcomer-{secrets.token_hex(4)}@example.com"
    newcomer = User(email, "correct horse battery", "", "")

    created = run_client(stack, newcomer, "list", "--register", "Newcomer")
    again = run_client(stack, newcomer, "list", "--register", "Newcomer")

    assert created.returncode == 0, created.stdout + created.stderr
    assert again.returncode == 0, again.stdout + again.stderr
    assert "logged in as Newcomer" in again.stdout
    assert "Write an email" in again.stdout


def test_a_wrong_password_is_one_clear_line(user, stack):
    wrong = User(user.email, "not the password", "", "")

    result = run_client(stack, wrong, "chat", "--new", "--message", "Hi")

    assert result.returncode == 1
    assert "✗" in result.stdout and "password" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def start_client(stack: Any, user: User, *args: str) -> subprocess.Popen:
    command, *options = args
    env = {**os.environ, "COLUMNS": "160", "PYTHONUNBUFFERED": "1", "NO_COLOR": "1"}
    env.pop("SYSTEM1_PASSWORD", None)
    return subprocess.Popen(
        [
            *(str(BIN / "python"), "-m", "client", command, "--url", stack.base_url),
            *("--email", user.email, "--password", user.password, "--timeout", "60"),
            *options,
        ],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until_answering(api: Api, user: User) -> str:
    """The session of the client's message, once its answer has streamed for a while."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        sessions = api.call("GET", "/session", user.token).json()["sessions"]
        if sessions:
            time.sleep(1.5)
            return sessions[0]["session_id"]
        time.sleep(0.1)
    raise TimeoutError("the client sent no message")


SLOW_STORY = "A long story [llm:words=400] [llm:token_interval_ms=50]"


def test_ctrl_c_during_an_answer_stops_it(api, user, stack):
    client = start_client(stack, user, "chat", "--new", "--message", SLOW_STORY)
    session_id = wait_until_answering(api, user)

    client.send_signal(signal.SIGINT)
    try:
        out, err = client.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        client.send_signal(signal.SIGQUIT)
        out, err = client.communicate(timeout=10)
        raise AssertionError(out + err) from None

    assert client.returncode == 0, out + err
    assert "stopped · acknowledged ✓" in out
    stored = api.messages(user, session_id)[0]["message"]
    assert stored["stopped"] is True
    assert 0 < len(stored["text"].split()) < 400


def test_a_second_ctrl_c_leaves(api, user, stack):
    client = start_client(stack, user, "chat", "--new", "--message", SLOW_STORY)
    wait_until_answering(api, user)

    client.send_signal(signal.SIGINT)
    time.sleep(0.05)
    client.send_signal(signal.SIGINT)
    out, err = client.communicate(timeout=30)

    assert client.returncode == 130, out + err
