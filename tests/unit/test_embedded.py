"""The embedded servers really start, serve, stop and restart: real processes, no mocks.

Every server here gets a fresh data folder and a free port, so these tests never touch the
machine's own PostgreSQL (5432) or Redis (6379), nor a developer's `make run` stack.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import psutil
import psycopg2
import pytest
import redis

from devtools.embedded import (
    LOOPBACK,
    EmbeddedPostgres,
    EmbeddedRedis,
    free_port,
    port_is_free,
    wait_for_port,
)


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    """One server for the read-only checks: initdb costs about a second."""
    with EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "data", free_port()) as server:
        yield server


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(tmp_path / "redis", free_port()) as server:
        yield server


def _process_tree(pid: int | None) -> list[psutil.Process]:
    assert pid is not None
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def _listening_addresses(pid: int | None) -> set[str]:
    assert pid is not None
    return {
        conn.laddr.ip
        for conn in psutil.Process(pid).net_connections(kind="inet")
        if conn.status == psutil.CONN_LISTEN
    }


def test_postgres_answers_a_query(postgres: EmbeddedPostgres) -> None:
    with psycopg2.connect(postgres.url("postgres")) as conn, conn.cursor() as cur:
        cur.execute("SELECT 1 + 1")
        assert cur.fetchone() == (2,)
    conn.close()


def test_postgres_ensure_database_creates_a_missing_database_idempotently(
    postgres: EmbeddedPostgres,
) -> None:
    postgres.ensure_database("created_by_test")
    postgres.ensure_database("created_by_test")

    with psycopg2.connect(postgres.url("created_by_test")) as conn, conn.cursor() as cur:
        cur.execute("SELECT current_database()")
        assert cur.fetchone() == ("created_by_test",)
    conn.close()


def test_postgres_listens_on_loopback_only(postgres: EmbeddedPostgres) -> None:
    assert _listening_addresses(postgres.pid) == {LOOPBACK}


def test_postgres_keeps_its_data_across_a_restart(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path / "data", free_port())
    with server:
        with psycopg2.connect(server.url("postgres")) as conn, conn.cursor() as cur:
            cur.execute("CREATE TABLE kept (value text); INSERT INTO kept VALUES ('still here')")
        conn.close()

    with server:  # same folder: initdb must not run again
        with psycopg2.connect(server.url("postgres")) as conn, conn.cursor() as cur:
            cur.execute("SELECT value FROM kept")
            assert cur.fetchone() == ("still here",)
        conn.close()


def test_postgres_stop_leaves_no_process(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path / "data", free_port())
    server.start()
    # An open session gives the postmaster a backend child that must go too.
    conn = psycopg2.connect(server.url("postgres"))
    processes = _process_tree(server.pid)
    assert len(processes) > 1

    server.stop()

    conn.close()
    _, alive = psutil.wait_procs(processes, timeout=5)
    assert alive == []
    assert not server.running
    assert port_is_free(server.port)


def test_postgres_refuses_a_port_in_use_with_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(RuntimeError, match=f"port {LOOPBACK}:{port} is already in use"):
            EmbeddedPostgres(tmp_path / "data", port).start()


def test_redis_answers_ping(redis_server: EmbeddedRedis) -> None:
    client = redis.Redis.from_url(redis_server.url())
    assert client.ping() is True
    client.close()


def test_redis_listens_on_loopback_only(redis_server: EmbeddedRedis) -> None:
    assert _listening_addresses(redis_server.pid) == {LOOPBACK}


def test_redis_stop_leaves_no_process(redis_server: EmbeddedRedis) -> None:
    processes = _process_tree(redis_server.pid)

    redis_server.stop()

    _, alive = psutil.wait_procs(processes, timeout=5)
    assert alive == []
    assert not redis_server.running
    assert port_is_free(redis_server.port)


def test_redis_restart_keeps_the_port_and_is_a_fresh_server(redis_server: EmbeddedRedis) -> None:
    client = redis.Redis.from_url(redis_server.url())
    client.set("before", "restart")
    old_pid = redis_server.pid

    redis_server.restart()

    assert redis_server.pid != old_pid
    assert client.ping() is True  # same URL, so the same port
    assert client.get("before") is None  # nothing is persisted
    client.close()


def test_free_port_returns_the_preferred_port_when_it_is_free() -> None:
    port = free_port()
    assert free_port(port) == port


def test_free_port_picks_another_port_when_the_preferred_one_is_taken() -> None:
    with socket.socket() as taken:
        taken.bind((LOOPBACK, 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert free_port(port) != port


def test_wait_for_port_times_out_when_nothing_listens() -> None:
    with pytest.raises(TimeoutError):
        wait_for_port(LOOPBACK, free_port(), timeout=0.3)
