"""A request whose database connection PostgreSQL closes under it (a restart) still ends
cleanly: its session is closed without a 500, and the next request gets a working
connection (found by `make soak`: a PostgreSQL restart turned answered requests into 500s
when their end-of-request rollback failed)."""

from __future__ import annotations

import os

import psycopg2
from sqlalchemy import text

from web.errors import close_request_session
from web.extensions import db


def _terminate_backend(pid: int) -> None:
    connection = psycopg2.connect(os.environ["DATABASE_URL"])
    try:
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", (pid,))
    finally:
        connection.close()


def test_ending_a_request_whose_connection_was_closed_raises_nothing():
    pid = db.session.execute(text("SELECT pg_backend_pid()")).scalar_one()  # a transaction
    _terminate_backend(pid)

    close_request_session()


def test_the_next_request_gets_a_working_connection():
    pid = db.session.execute(text("SELECT pg_backend_pid()")).scalar_one()
    _terminate_backend(pid)
    close_request_session()

    assert db.session.execute(text("SELECT 1")).scalar_one() == 1
