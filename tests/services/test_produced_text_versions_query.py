"""common/queries/produced_texts.py: a produced text's versions are numbered densely,
whoever writes them, against the real PostgreSQL."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import text

from common.db import with_db_session
from common.models import ProducedText
from common.queries.produced_texts import add_version, latest_version


def _new_text(user_id: str) -> int:
    with with_db_session() as db:
        produced_text = ProducedText(user_id=user_id)
        db.add(produced_text)
        db.commit()
        return produced_text.produced_text_pk


def _add(produced_text_pk: int, title: str, author: str) -> int:
    with with_db_session() as db:
        produced_text = db.get(ProducedText, produced_text_pk)
        version = add_version(db, produced_text, title, f"{title} text", "document", author)
        db.commit()
        return version.version_index


def test_versions_are_numbered_one_after_the_other_whoever_writes_them(user_id):
    produced_text_pk = _new_text(user_id)

    indexes = [
        _add(produced_text_pk, f"v{n}", author)
        for n, author in enumerate(("assistant", "user", "assistant"), start=1)
    ]

    assert indexes == [1, 2, 3]


def test_each_text_numbers_its_own_versions(user_id):
    first, second = _new_text(user_id), _new_text(user_id)
    _add(first, "a", "assistant")
    _add(first, "b", "assistant")

    assert _add(second, "c", "assistant") == 1


def test_the_latest_version_is_the_highest_numbered(user_id):
    produced_text_pk = _new_text(user_id)
    _add(produced_text_pk, "draft", "assistant")
    _add(produced_text_pk, "edit", "user")

    with with_db_session() as db:
        latest = latest_version(db, produced_text_pk)

    assert (latest.version_index, latest.title, latest.author) == (2, "edit", "user")


def test_a_text_without_versions_has_no_latest_version(user_id):
    produced_text_pk = _new_text(user_id)

    with with_db_session() as db:
        assert latest_version(db, produced_text_pk) is None


def test_an_edit_arriving_during_a_draft_gets_the_next_number(user_id, connection):
    produced_text_pk = _new_text(user_id)

    with with_db_session() as drafting, ThreadPoolExecutor(1) as pool:
        add_version(
            drafting,
            drafting.get(ProducedText, produced_text_pk),
            "draft",
            "",
            "document",
            "assistant",
        )
        edit = pool.submit(_add, produced_text_pk, "edit", "user")
        _wait_for_a_lock_wait(connection)
        drafting.commit()

    assert edit.result(timeout=10) == 2


def _wait_for_a_lock_wait(connection, timeout_s: float = 10.0) -> None:
    """Until another backend of this database waits for a lock (the edit, for the text's
    row that the draft holds)."""
    deadline = time.monotonic() + timeout_s
    waiting = text(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    while connection.scalar(waiting) == 0:
        assert time.monotonic() < deadline, "the edit never waited for the draft's lock"
        time.sleep(0.01)
