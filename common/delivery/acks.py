"""Storing the clients' acknowledgments of delivered messages."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import update

from common.db import autocommit_connection
from common.models import Message


def record_acks(message_pks: Sequence[int]) -> set[int]:
    """Store the acknowledgments of these messages, in one statement; the pks whose
    first ack this call stored.

    Not durable (see `with_db_session`): an ack lost in a crash costs one more resend,
    which the client drops by its message_pk."""
    with autocommit_connection(durable=False) as connection:
        stored = connection.execute(
            update(Message)
            .where(Message.message_pk.in_(message_pks), Message.acknowledged_at.is_(None))
            .values(acknowledged_at=datetime.now(UTC))
            .returning(Message.message_pk)
        ).scalars()
        return set(stored)
