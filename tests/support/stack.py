"""The System1 stack as the tests run it: real web nodes, real Celery workers
and the scripted LLM, all as separate processes over loopback."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
import requests
from sqlalchemy.engine import make_url

from devtools.embedded import EmbeddedRedis, free_port
from tests.support.processes import (
    BIN,
    ROOT,
    ChildProcess,
    celery_worker,
    http_ok,
    scripted_llm,
    wait_until,
    web_node,
)

BACKOFFICE_SECRET = "test-backoffice-secret"
WEBAPP_SECRET = "test-webapp-secret"

GENEROUS_RATE_LIMITS = {
    "LOGIN_RATE_LIMIT": "100000/minute",
    "REGISTER_RATE_LIMIT": "100000/minute",
    "MESSAGE_RATE_LIMIT": "100000/minute",
    "MESSAGE_ADDRESS_RATE_LIMIT": "100000/minute",
}

# Variables of the developer's shell that must not leak into the stack under test.
_SCRUBBED = ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "OPENAI_API_KEY", "PORT")


def base_env(database_url: str, redis_url: str, llm_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    env.update(
        APP_ENV="test",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        OPENAI_BASE_URL=llm_url,
        OPENAI_API_KEY="scripted",
        LLM_MODEL="scripted",
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
        LOG_LEVEL="INFO",
        # JSON lines, so that tests can follow a turn through the logs by its ids.
        LOG_FORMAT="json",
        TOKEN_EMIT_INTERVAL_MS="20",
        BACKOFFICE_SECRET=BACKOFFICE_SECRET,
        MOJODEX_WEBAPP_SECRET=WEBAPP_SECRET,
        LLM_MAX_RETRIES="1",
        LLM_RETRY_BACKOFF_S="0.2",
        TURN_LEASE_S="6",
        RECOVERY_INTERVAL_S="2",
        LLM_STALL_TIMEOUT_S="2",
        # Every test client is 127.0.0.1 and registers many users: generous
        # limits here; tests/integration/test_rate_limits.py sets low ones.
        **GENEROUS_RATE_LIMITS,
    )
    env.update(extra)
    return env


def fresh_database(database_url: str, name: str) -> str:
    """A new, empty database on the same server as `database_url`.

    Stacks that run their own workers need their own database: their recovery
    sweep would otherwise pick up the other stacks' messages.
    """
    server = make_url(database_url)
    connection = psycopg2.connect(server.set(database="postgres").render_as_string(False))
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            cursor.execute(f'CREATE DATABASE "{name}"')
    finally:
        connection.close()
    return server.set(database=name).render_as_string(False)


def migrate(env: dict[str, str]) -> None:
    """Apply the schema migrations and load the task catalogue, as `make run` does."""
    for command in (["db", "upgrade"], ["load-tasks"]):
        subprocess.run(
            [str(BIN / "flask"), "--app", "web.wsgi", *command],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )


def isolated_stack(
    database_url: str,
    llm_url: str,
    directory: Path,
    name: str,
    web_nodes: int = 1,
    workers: tuple[str, ...] = ("turns,delivery,todos",),
    **settings: str,
) -> Stack:
    """A started stack with a Redis of its own (which a test may stop or
    restart) and a fresh database `system1_<name>` on the server of
    `database_url`; settings override the base environment. Without workers it
    is not waited healthy (/health needs one), only answering."""
    redis_server = EmbeddedRedis(directory / f"redis-{name}", free_port())
    redis_server.start()
    stack = Stack({}, directory / f"stack-{name}", redis_server=redis_server)
    try:
        # Each pytest-xdist worker creates its own, on a shared server.
        worker = os.environ.get("PYTEST_XDIST_WORKER", "")
        database = fresh_database(database_url, f"system1_{name}{worker}")
        stack.env = base_env(database, redis_server.url(0), llm_url, **settings)
        migrate(stack.env)
        stack.log_dir.mkdir()
        for _ in range(web_nodes):
            stack.start_web_node()
        for position, queues in enumerate(workers):
            stack.start_worker(queues, beat=position == 0)
        if workers:
            stack.wait_healthy()
    except BaseException:
        stack.stop()
        raise
    return stack


def start_scripted_llm(env: dict[str, str], log_dir: Path) -> tuple[ChildProcess, str]:
    port = free_port()
    process = scripted_llm(port, env, log_dir).start()
    wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/health"), 20, "the scripted LLM")
    return process, f"http://127.0.0.1:{port}/v1"


@dataclass
class Stack:
    """Web node(s) and worker(s) sharing one database, one Redis and one LLM."""

    env: dict[str, str]
    log_dir: Path
    web_nodes: list[ChildProcess] = field(default_factory=list)
    workers: list[ChildProcess] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)
    # Set for a stack with a Redis of its own, which a test may stop or restart.
    redis_server: EmbeddedRedis | None = None

    @property
    def base_url(self) -> str:
        return self.url(0)

    def url(self, node: int) -> str:
        return f"http://127.0.0.1:{self.ports[node]}"

    def start_web_node(self) -> str:
        port = free_port()
        name = f"web-{len(self.web_nodes)}"
        node = web_node(name, port, self.env, self.log_dir)
        self.web_nodes.append(node)
        self.ports.append(port)
        self._start_node(len(self.web_nodes) - 1)
        return self.url(len(self.web_nodes) - 1)

    def _start_node(self, index: int) -> None:
        node = self.web_nodes[index].start()
        url = self.url(index)
        try:
            wait_until(lambda: _responds(url), 30, node.name)
        except TimeoutError:
            raise RuntimeError(f"{node.name} did not start:\n{node.log_tail()}") from None

    def restart_web_node(self, index: int = 0) -> None:
        """Stop a web node and start it again on the same port."""
        self.web_nodes[index].stop()
        self._start_node(index)

    def start_worker(
        self, queues: str = "turns,delivery,todos", concurrency: int = 8, beat: bool = True
    ) -> ChildProcess:
        name = f"worker-{len(self.workers)}"
        worker = celery_worker(name, queues, self.env, self.log_dir, concurrency, beat).start()
        self.workers.append(worker)
        return worker

    def wait_healthy(self, timeout: float = 60.0) -> None:
        try:
            wait_until(lambda: http_ok(self.base_url + "/health"), timeout, "a healthy stack")
        except TimeoutError:
            logs = "\n".join(p.log_tail() for p in self.web_nodes + self.workers)
            raise RuntimeError(f"stack not healthy:\n{logs}") from None

    def stop(self) -> None:
        for process in self.workers + self.web_nodes:
            process.stop()
        if self.redis_server is not None:
            self.redis_server.stop()


def _responds(url: str) -> bool:
    """Whether the node answers HTTP at all (healthy or not)."""
    try:
        requests.get(url + "/health", timeout=3)
        return True
    except requests.RequestException:
        return False
