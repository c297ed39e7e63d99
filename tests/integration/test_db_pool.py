"""Pooled PostgreSQL connections: pinged only after sitting idle (common/db.py)."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg2
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from common import db
from common.settings import Settings, get_settings


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    url = Settings(database_url=database_url).sqlalchemy_database_url
    engine = create_engine(url, **db.ENGINE_OPTIONS)
    yield engine
    engine.dispose()


def backend_pid(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(text("SELECT pg_backend_pid()")).scalar_one()


def terminate(database_url: str, pid: int) -> None:
    admin = psycopg2.connect(database_url)
    try:
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", (pid,))
    finally:
        admin.close()


def test_a_connection_lost_while_idle_is_replaced_before_use(engine, database_url, monkeypatch):
    pid = backend_pid(engine)
    terminate(database_url, pid)
    monkeypatch.setattr(db, "PING_AFTER_IDLE_S", 0.0)  # as if it had sat idle

    with engine.connect() as connection:
        assert connection.execute(text("SELECT 1")).scalar_one() == 1
    assert backend_pid(engine) != pid


def test_a_connection_lost_right_after_use_fails_once_then_the_pool_recovers(engine, database_url):
    terminate(database_url, backend_pid(engine))

    with pytest.raises(OperationalError), engine.connect() as connection:
        connection.execute(text("SELECT 1"))
    with engine.connect() as connection:
        assert connection.execute(text("SELECT 1")).scalar_one() == 1


@pytest.fixture
def own_engines(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """common/db.py's engines, on the test database, made for this test alone."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    get_settings.cache_clear()
    db.get_engine.cache_clear()
    yield
    for durable in (True, False):
        for autocommit in (True, False):
            db.get_engine(durable, autocommit).dispose()
    monkeypatch.undo()
    get_settings.cache_clear()
    db.get_engine.cache_clear()


def last_query(database_url: str, pid: int) -> str:
    admin = psycopg2.connect(database_url)
    try:
        with admin.cursor() as cursor:
            cursor.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", (pid,))
            return cursor.fetchone()[0]
    finally:
        admin.close()


def test_an_autocommit_connection_goes_back_to_the_pool_without_a_query(own_engines, database_url):
    # Switched to autocommit per use, psycopg2 sent `SET default_transaction_isolation TO
    # DEFAULT` at every return to the pool: a round trip per use.
    for _ in range(3):
        with db.autocommit_connection() as connection:
            pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()

    assert last_query(database_url, pid) == "SELECT pg_backend_pid()"


def test_statements_on_an_autocommit_connection_commit_on_their_own(own_engines, database_url):
    with db.autocommit_connection(durable=False) as connection:
        connection.execute(text("CREATE TEMP TABLE probe (n int)"))
        connection.execute(text("INSERT INTO probe VALUES (1)"))
        in_transaction = connection.execute(text("SELECT now() <> statement_timestamp()"))
        assert in_transaction.scalar_one() is False
