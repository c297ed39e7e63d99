"""Session fixtures: PostgreSQL and Redis (given by TEST_DATABASE_URL /
TEST_REDIS_URL, else embedded ones started here), the scripted LLM, and the
stack (a web node and a Celery worker) that the integration tests talk to."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from devtools.embedded import EmbeddedPostgres, EmbeddedRedis, free_port
from tests.support.clients import Api, SocketClient, User
from tests.support.stack import (
    Stack,
    base_env,
    fresh_database,
    isolated_stack,
    migrate,
    start_scripted_llm,
)

TEST_DATABASE = "system1_test"
# Under pytest-xdist (`make test` runs two workers) each worker has its own stack;
# on servers given by TEST_*_URL they must not share a database or a Redis db.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")


def _redis_db_for_worker(url: str) -> str:
    """The given Redis URL, on the next database numbers for workers gw1, gw2..."""
    parts = urlsplit(url)
    db = int(parts.path.lstrip("/") or 0) + int(XDIST_WORKER.removeprefix("gw") or 0)
    return urlunsplit(parts._replace(path=f"/{db}"))


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Logs and data of this run's processes (kept by pytest for a look)."""
    return tmp_path_factory.mktemp("run")


@pytest.fixture(scope="session")
def database_url(run_dir: Path) -> Iterator[str]:
    given = os.environ.get("TEST_DATABASE_URL")
    if given:
        yield fresh_database(given, f"system1_test_{XDIST_WORKER}") if XDIST_WORKER else given
        return
    server = EmbeddedPostgres(run_dir / "postgres", free_port())
    server.start()
    server.ensure_database(TEST_DATABASE)
    yield server.url(TEST_DATABASE)
    server.stop()


@pytest.fixture(scope="session")
def redis_url(run_dir: Path) -> Iterator[str]:
    given = os.environ.get("TEST_REDIS_URL")
    if given:
        yield _redis_db_for_worker(given)
        return
    server = EmbeddedRedis(run_dir / "redis", free_port())
    server.start()
    yield server.url(0)
    server.stop()


@pytest.fixture(scope="session")
def llm_url(run_dir: Path) -> Iterator[str]:
    process, url = start_scripted_llm(dict(os.environ), run_dir)
    yield url
    process.stop()


@pytest.fixture(scope="session")
def stack_env(database_url: str, redis_url: str, llm_url: str) -> dict[str, str]:
    env = base_env(database_url, redis_url, llm_url)
    migrate(env)
    return env


@pytest.fixture(scope="session")
def stack(stack_env: dict[str, str], run_dir: Path) -> Iterator[Stack]:
    """One web node and one worker serving both queues, for the whole run."""
    stack = Stack(stack_env, run_dir)
    try:
        stack.start_web_node()
        stack.start_worker()
        stack.wait_healthy()
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def make_stack(database_url: str, llm_url: str, tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    """Build an isolated stack: its own Redis (which the test may stop or
    restart), its own database, web nodes and workers; settings overridable."""
    created: list[Stack] = []

    def _make(
        web_nodes: int = 1, workers: tuple[str, ...] = ("turns,delivery,todos",), **settings: str
    ) -> Stack:
        name = f"isolated_{len(created)}"
        stack = isolated_stack(
            database_url, llm_url, tmp_path, name, web_nodes, workers, **settings
        )
        created.append(stack)
        return stack

    yield _make
    for stack in created:
        stack.stop()


@pytest.fixture
def api(stack: Stack) -> Api:
    return Api(stack.base_url)


@pytest.fixture
def user(api: Api) -> User:
    return api.register("Ada")


@pytest.fixture
def other_user(api: Api) -> User:
    return api.register("Mallory")


@pytest.fixture
def session_id(api: Api, user: User) -> str:
    return api.create_session(user)


@pytest.fixture
def sockets(stack: Stack) -> Iterator[list[SocketClient]]:
    """Socket clients opened by a test, closed after it."""
    opened: list[SocketClient] = []
    yield opened
    for client in opened:
        client.close()


@pytest.fixture
def connect(stack: Stack, sockets: list[SocketClient]):
    """Open an authenticated socket (optionally joined to a session)."""

    def _connect(
        user: User, session_id: str | None = None, ack: bool = True, url: str | None = None
    ) -> SocketClient:
        client = SocketClient(url or stack.base_url, user.token, ack=ack).connect()
        sockets.append(client)
        if session_id is not None:
            answer = client.start_session(session_id)
            assert answer == {"session_id": session_id, "joined": True}, answer
        return client

    return _connect
