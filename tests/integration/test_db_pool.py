"""Pooled PostgreSQL connections: pinged only after sitting idle (common/db.py)."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg2
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from common import db
from common.settings import Settings


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
