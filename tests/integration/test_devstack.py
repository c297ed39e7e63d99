"""`make run` end to end: `python -m devtools.devstack` on a machine with nothing configured.

One dev stack is started for the module, exactly as a developer's `make run` would start it
(embedded PostgreSQL and Redis, the offline scripted LLM, migrations, the demo seed, then
gunicorn, two Celery workers and Flower under honcho), but with DATA_DIR in a temporary folder
and the web node on a free port. The last test stops it with SIGINT, as Ctrl-C would.

Ports: devstack prefers fixed ports for PostgreSQL, Redis, the LLM and Flower, falling back to
a kernel-picked free port when the preferred one is taken; there is no setting to choose them.
So that this module never takes (or races for) the ports of a developer's own `make run`, it
holds every preferred port that is free while its stack runs: the stack then uses free ports
only, as the rest of the test suite does.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psutil
import pytest
import requests

from devtools import devstack
from devtools.embedded import LOOPBACK, free_port
from tests.support.clients import Api, SocketClient, User

ROOT = Path(__file__).resolve().parents[2]
PREFERRED_PORTS = (
    devstack.POSTGRES_PORT,
    devstack.REDIS_PORT,
    devstack.LLM_PORT,
    devstack.FLOWER_PORT,
)
HEALTHY_WITHIN_S = 90.0
STOPPED_WITHIN_S = 30.0


@dataclass
class Devstack:
    """The running `python -m devtools.devstack` and everything it printed so far."""

    proc: subprocess.Popen[str]
    data_dir: Path
    port: int
    output: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.output)

    @property
    def log_path(self) -> Path:
        """The whole output, kept next to DATA_DIR for a look after a failure."""
        return self.data_dir.with_name(self.data_dir.name + ".log")

    def tail(self, chars: int = 4000) -> str:
        return f"(all of it in {self.log_path})\n...{self.text[-chars:]}"

    def wait_for_output(self, pattern: str, timeout: float = 15.0) -> re.Match[str]:
        """The first match of `pattern` (multi-line) in the output, waiting for it to appear."""
        regex = re.compile(pattern, re.MULTILINE)
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.text)
            if match:
                return match
            if time.monotonic() >= deadline or self.proc.poll() is not None:
                pytest.fail(f"no {pattern!r} in the devstack output:\n{self.tail()}")
            time.sleep(0.1)

    def printed_url(self, name: str) -> str:
        """A URL of the "System1 is up" table, e.g. "API" or "Flower"."""
        self.wait_for_output(r"devstack \| System1 is up:$")
        return self.wait_for_output(rf"^\s+{name}\s+(http://\S+)$").group(1)

    def descendants(self) -> list[psutil.Process]:
        """Every live process below devstack: honcho's helpers, the programs, the servers."""
        try:
            return psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []


def _hold_free_ports(ports: tuple[int, ...]) -> list[socket.socket]:
    """Bind (without SO_REUSEADDR, without listening) each port that is free now.

    devstack's `port_is_free` then reports it as taken and picks another one, while any
    connection to it is refused rather than left hanging.
    """
    held = []
    for port in ports:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:  # a developer's own stack (or something else) has it: fine too
            sock.close()
        else:
            held.append(sock)
    return held


def _read_output(stack: Devstack) -> None:
    assert stack.proc.stdout is not None
    with stack.log_path.open("w") as log:
        for line in stack.proc.stdout:
            stack.output.append(line)
            log.write(line)
            log.flush()


def _status(url: str) -> int | None:
    try:
        return requests.get(url, timeout=3).status_code
    except requests.RequestException:
        return None


def _wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.3) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


def _alive(process: psutil.Process) -> bool:
    """Whether this very process (not a reuse of its pid) still runs; zombies are dead."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _describe(process: psutil.Process) -> str:
    try:
        return f"{process.pid} {' '.join(process.cmdline())[:200]}"
    except psutil.Error:
        return str(process.pid)


def _started_with(process: psutil.Process, data_dir: Path) -> bool:
    """Whether a process belongs to this data folder: by command line, cwd or environment.

    Every process devstack starts inherits DATA_DIR, so the environment catches even one that
    was reparented after devstack died; the command line and cwd catch the embedded servers.
    """
    marker = str(data_dir)
    try:
        if any(marker in arg for arg in process.cmdline()):
            return True
        cwd = process.cwd()
        if cwd == marker or cwd.startswith(marker + os.sep):
            return True
        return process.environ().get("DATA_DIR") == marker
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


def _processes_of(data_dir: Path) -> list[psutil.Process]:
    me = os.getpid()
    return [p for p in psutil.process_iter() if p.pid != me and _started_with(p, data_dir)]


def _stop(stack: Devstack) -> None:
    """The safety net when a test failed before stopping the stack itself."""
    if stack.proc.poll() is not None:
        return
    survivors = stack.descendants()
    stack.proc.send_signal(signal.SIGINT)
    try:
        stack.proc.wait(STOPPED_WITHIN_S)
    except subprocess.TimeoutExpired:
        stack.proc.kill()
        stack.proc.wait()
    for process in survivors + _processes_of(stack.data_dir):
        if _alive(process):
            with contextlib.suppress(psutil.Error):
                process.kill()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devstack]:
    data_dir = tmp_path_factory.mktemp("devstack")
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in devstack.SERVICE_VARIABLES and not k.startswith("TEST_")
    }
    env.update(DATA_DIR=str(data_dir), PORT=str(port), HOST=LOOPBACK, PYTHONUNBUFFERED="1")
    held = _hold_free_ports(PREFERRED_PORTS)
    proc = subprocess.Popen(
        [sys.executable, "-m", "devtools.devstack"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
        # Its own group: a Ctrl-C meant for pytest does not race the fixture's clean-up.
        process_group=0,
    )
    running = Devstack(proc, data_dir, port)
    threading.Thread(target=_read_output, args=(running,), daemon=True).start()
    try:
        healthy = _wait_until(
            lambda: proc.poll() is not None or _status(f"http://{LOOPBACK}:{port}/health") == 200,
            HEALTHY_WITHIN_S,
        )
        if proc.poll() is not None or not healthy:
            pytest.fail(
                f"devstack not healthy (exit code {proc.poll()}) within {HEALTHY_WITHIN_S:g} s:\n"
                f"{running.tail()}"
            )
        yield running
    finally:
        try:
            _stop(running)
        finally:
            for sock in held:
                sock.close()


def test_output_names_the_offline_llm_the_api_url_and_the_demo_login(stack: Devstack) -> None:
    stack.wait_for_output(r"No OPENAI_API_KEY/OPENAI_BASE_URL: using the offline scripted LLM$")
    assert stack.printed_url("API") == f"http://{LOOPBACK}:{stack.port}"
    assert stack.printed_url("LLM").startswith(f"http://{LOOPBACK}:")
    login = stack.wait_for_output(r"demo login: (\S+) / (\S+)$")
    assert login.groups() == ("demo@system1.local", "demo-password")


def test_demo_user_chats_over_rest_and_socketio(stack: Devstack) -> None:
    email, password = stack.wait_for_output(r"demo login: (\S+) / (\S+)$").groups()
    api = Api(stack.printed_url("API"))
    login = api.call("POST", "/user", json={"email": email, "password": password})
    assert login.status_code == 200, login.text
    user = User(email, password, login.json()["token"], login.json()["user_id"])
    session_id = api.create_session(user)
    client = SocketClient(api.base_url, user.token).connect()
    try:
        joined = client.start_session(session_id)
        assert joined == {"session_id": session_id, "joined": True}, joined
        text = "Hello from make run [llm:words=30] [llm:token_interval_ms=5]"

        sent = api.send_message(user, session_id, text, message_id="devstack-1")

        assert sent.status_code == 200, sent.text
        try:
            reply = client.wait_for("mojo_message", timeout=30)
        except TimeoutError as exc:
            pytest.fail(f"{exc}; devstack output:\n{stack.tail(12000)}")
    finally:
        client.close()
    tokens = [t["text"] for t in client.events("mojo_token")]
    assert len(tokens) >= 2
    assert all(later.startswith(earlier) for earlier, later in itertools.pairwise(tokens))
    assert tokens[-1] == reply["text"]
    assert len(client.events("mojo_message")) == 1
    history = list(reversed(api.messages(user, session_id)))  # the API answers newest first
    assert [m["sender"] for m in history] == ["user", "mojo"]
    assert history[0]["message"]["text"] == text
    assert history[1]["message_pk"] == reply["message_pk"]
    user_at, mojo_at = (datetime.fromisoformat(m["message_date"]) for m in history)
    assert user_at <= mojo_at


def test_metrics_are_served_on_their_printed_url(stack: Devstack) -> None:
    metrics = stack.printed_url("Metrics")

    response = requests.get(metrics, timeout=10)

    assert metrics == f"http://{LOOPBACK}:{stack.port}/metrics"
    assert response.status_code == 200, response.text
    assert "system1_turns_started_total" in response.text


def test_flower_answers_on_its_printed_url(stack: Devstack) -> None:
    flower = stack.printed_url("Flower")
    flower_port = int(flower.rsplit(":", 1)[1])
    # The preferred port is held by this module or by a developer's stack: never ours.
    assert flower_port != devstack.FLOWER_PORT
    assert _wait_until(lambda: _status(flower + "/") == 200, 20), stack.tail()


def test_sigint_stops_everything_with_exit_code_0(stack: Devstack) -> None:
    """Runs last: it tears the module's stack down."""
    started = list({p.pid: p for p in stack.descendants() + _processes_of(stack.data_dir)}.values())
    commands = "\n".join(_describe(p) for p in started)
    assert "gunicorn" in commands and "celery" in commands, commands
    # The embedded servers are devstack's own children, in their own process groups.
    servers = {p.name(): p.pid for p in psutil.Process(stack.proc.pid).children()}
    assert {"postgres", "redis-server"} <= servers.keys(), commands

    stack.proc.send_signal(signal.SIGINT)

    try:
        code = stack.proc.wait(STOPPED_WITHIN_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"devstack still running {STOPPED_WITHIN_S:g} s after SIGINT:\n{stack.tail()}")
    assert code == 0, stack.tail()
    # Orphans are reaped (or become zombies) a moment after their parent exits.
    _wait_until(lambda: not any(_alive(p) for p in started), 3, interval=0.1)
    left = [p for p in started if _alive(p)] + _processes_of(stack.data_dir)
    assert not left, "\n".join(_describe(p) for p in left)
