"""The tables: users, sessions and messages.

Identifiers the clients see for users and sessions are unguessable strings;
everything else is an integer primary key, as in the Mojodex protocol.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from common.db import db

USER_SENDER = "user"
MOJO_SENDER = "mojo"
SYSTEM_SENDER = "system"


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_public_id() -> str:
    """128 random bits, hex-encoded: safe to expose, impossible to guess."""
    return secrets.token_hex(16)


class User(db.Model):
    __tablename__ = "md_user"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_public_id)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    password_hash: Mapped[str] = mapped_column(String(255))
    language_code: Mapped[str | None] = mapped_column(String(16))
    terms_and_conditions_agreed: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    company_fk: Mapped[int | None] = mapped_column(Integer)
    creation_date: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Session(db.Model):
    __tablename__ = "md_session"

    session_id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_public_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("md_user.user_id", ondelete="CASCADE"))
    title: Mapped[str | None] = mapped_column(String(255))
    platform: Mapped[str | None] = mapped_column(String(32))
    # "chat" for free conversation, "form" for a task execution's session.
    mode: Mapped[str] = mapped_column(String(16), default="chat")
    intro_done: Mapped[bool] = mapped_column(Boolean, default=False)
    creation_date: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_message_date: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_md_session_user_last_message", "user_id", "last_message_date"),)


class Message(db.Model):
    """A user, assistant ("mojo") or system message of a session.

    `message` is the JSON payload clients see (text, message_pk, message_id...).
    Two unique indexes make the turn idempotent at the database level: one
    user message per client `message_id` in a session, and at most one
    assistant reply per user message.
    """

    __tablename__ = "md_message"

    message_pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    session_id: Mapped[str] = mapped_column(
        ForeignKey("md_session.session_id", ondelete="CASCADE"), index=True
    )
    sender: Mapped[str] = mapped_column(String(16))
    event_name: Mapped[str] = mapped_column(String(32))
    message: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    # The client's own id for a user message (Mojodex `message_id`).
    client_message_id: Mapped[str | None] = mapped_column(String(255))
    # For an assistant message: the user message it answers.
    in_reply_to_pk: Mapped[int | None] = mapped_column(
        ForeignKey("md_message.message_pk", ondelete="CASCADE")
    )
    message_date: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    creation_date: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    in_error_state: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error_text: Mapped[str | None] = mapped_column(Text)
    # Delivery state of an assistant message: set once a client acknowledged it.
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # How many times it was sent (first delivery + resends), and when last.
    delivery_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_delivery_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # For a user message: the turn answering it is held by `turn_task_id` until
    # `turn_lease_until`; a turn whose lease ran out was lost and is started again.
    turn_lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    turn_task_id: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        CheckConstraint("sender IN ('user', 'mojo', 'system')", name="sender_known"),
        Index(
            "uq_md_message_session_client_message_id",
            "session_id",
            "client_message_id",
            unique=True,
            postgresql_where=text("client_message_id IS NOT NULL"),
        ),
        Index(
            "uq_md_message_in_reply_to_pk",
            "in_reply_to_pk",
            unique=True,
            postgresql_where=text("in_reply_to_pk IS NOT NULL"),
        ),
        Index("ix_md_message_session_date", "session_id", "message_date", "message_pk"),
        # The recovery sweep looks for these two sets often: keep them small indexes.
        Index(
            "ix_md_message_awaiting_ack",
            "last_delivery_at",
            postgresql_where=text(
                "sender = 'mojo' AND acknowledged_at IS NULL AND in_error_state IS NULL"
            ),
        ),
        Index(
            "ix_md_message_user_creation",
            "creation_date",
            postgresql_where=text("sender = 'user'"),
        ),
    )

    @property
    def text(self) -> str:
        return str(self.message.get("text", ""))
