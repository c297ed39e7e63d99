"""Database access: the declarative base, the Flask-SQLAlchemy extension, and sessions
and connections for work outside a Flask request (workers, socket handlers, background
greenlets).

Why each engine (each with its own pool of at most ENGINE_OPTIONS' size) exists:
- Flask-SQLAlchemy's engine (`db.session`): request handlers, one transaction per request.
- `get_engine()`: durable ORM sessions outside requests (`with_db_session()`): a turn's
  draft with its reply, titles, recovery reads.
- `get_engine(durable=False)`: bookkeeping that is safe to lose in a crash (leases,
  delivery attempts): commits do not wait for the WAL flush (`synchronous_commit=off`,
  set once per connection).
- `get_engine(autocommit=True)` and its non-durable twin: single statements on the hot
  paths (PUT /user_message, a turn's claim and reply, ack batches) with no BEGIN/COMMIT
  round trips; autocommit is set once per connection, not per use.
Pools are per process and per engine; the worst case of connections per process is the
number of engines used times (pool_size + max_overflow).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import psycopg2
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData, create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session
from sqlalchemy.pool import Pool

from common.settings import get_settings

# Stable constraint names keep Alembic migrations reproducible.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)

# A dependency that is down must give a quick 503, never a hang. Liveness is checked
# by `_ping_if_idle` below, not by `pool_pre_ping`.
ENGINE_OPTIONS = {
    "pool_size": 10,
    "max_overflow": 20,
    "pool_timeout": 5,
    "connect_args": {"connect_timeout": 3},
}


# A pooled connection is pinged before use only after it sat idle this long.
PING_AFTER_IDLE_S = 1.0


@event.listens_for(Pool, "connect")
@event.listens_for(Pool, "checkin")
def _note_last_use(dbapi_connection: Any, connection_record: Any) -> None:
    connection_record.info["last_used_at"] = time.monotonic()


@event.listens_for(Pool, "checkout")
def _ping_if_idle(dbapi_connection: Any, connection_record: Any, connection_proxy: Any) -> None:
    """Ping a connection that sat idle in the pool before handing it out; a dead one is
    replaced by a new connection (the pool retries on DisconnectionError).

    Why not `pool_pre_ping`: it pings at every checkout, a round trip before each
    transaction on the path of every PUT /user_message and turn start (docs/performance.md,
    "Pool pings"). A connection that failed within PING_AFTER_IDLE_S (PostgreSQL restarted
    within the second) fails its statement, which answers 503 and makes the pool drop all
    its connections, as any disconnect does.
    """
    last_used_at = connection_record.info.get("last_used_at")
    if last_used_at is not None and time.monotonic() - last_used_at < PING_AFTER_IDLE_S:
        return
    if not _ping(dbapi_connection):
        raise DisconnectionError("the pooled connection was lost while idle")


def _ping(dbapi_connection: Any) -> bool:
    """A `SELECT 1` outside any transaction (psycopg2); False if the connection is dead."""
    autocommit = dbapi_connection.autocommit
    try:
        dbapi_connection.autocommit = True
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except psycopg2.Error:
        return False
    finally:
        if not dbapi_connection.closed:
            dbapi_connection.autocommit = autocommit


# What a non-durable connection sets for its whole life (see `with_db_session`).
NOT_DURABLE_OPTIONS = "-c synchronous_commit=off"


@lru_cache(maxsize=4)
def get_engine(durable: bool = True, autocommit: bool = False) -> Engine:
    """The engines of this process for work outside Flask requests, each with its pool.

    `durable=False`: for writes that need not wait for the disk; its connections are
    opened with `synchronous_commit` off, instead of each transaction saying so in a round
    trip of its own.

    `autocommit=True`: for `autocommit_connection`; its connections are put in autocommit
    once, when opened: set per use, it cost a round trip at every return to the pool
    (docs/performance.md, "Autocommit connections").
    """
    options: dict = dict(ENGINE_OPTIONS)
    if not durable:
        options["connect_args"] = {**options["connect_args"], "options": NOT_DURABLE_OPTIONS}
    if autocommit:
        options["isolation_level"] = "AUTOCOMMIT"
    return create_engine(get_settings().sqlalchemy_database_url, **options)


@contextmanager
def with_db_session(durable: bool = True) -> Iterator[Session]:
    """A session for work outside a request; rolled back on error, always closed.

    The caller commits explicitly: nothing is written by accident.

    `durable=False` is for bookkeeping that the recovery sweep or a compare-and-set already
    makes safe to lose in a PostgreSQL crash (turn leases, delivery attempts, acks): its
    commit does not wait for the WAL to reach the disk (`synchronous_commit = off`). A
    crash may forget the last few hundred milliseconds of such writes, never corrupt
    anything; waiting for the flush would cost every token's path milliseconds
    (docs/performance.md, "Non-durable commits").
    """
    session = Session(get_engine(durable), expire_on_commit=False)
    try:
        yield session
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@contextmanager
def autocommit_connection(durable: bool = True) -> Iterator[Connection]:
    """A Core connection on which every statement commits on its own, for work done in a
    single statement (or in statements that need not be atomic together).

    psycopg2 otherwise sends a BEGIN before the first statement and a COMMIT after it:
    two round trips more on the path of every message (docs/performance.md, "Autocommit
    connections").
    """
    with get_engine(durable, autocommit=True).connect() as connection:
        yield connection
