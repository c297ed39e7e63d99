"""The tables: users, chat sessions, messages, tasks, executions and produced texts.

Identifiers the clients see for users and sessions are unguessable strings;
everything else is an integer primary key, as in the Mojodex protocol.
"""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ColumnElement,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    and_,
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
    # Minutes to add to local time to get UTC, as a browser's Date.getTimezoneOffset()
    # gives it (Mojodex's timezone_offset): Paris in summer is -120.
    timezone_offset: Mapped[int | None] = mapped_column(Integer)
    creation_date: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ChatSession(db.Model):
    """A conversation of a user: a free chat, or the session of a task execution."""

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
    # Indexed by ix_md_message_session_date, whose leading column it is.
    session_id: Mapped[str] = mapped_column(ForeignKey("md_session.session_id", ondelete="CASCADE"))
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
        # The recovery sweep looks for new messages a turn answers (a user's, or a task
        # run's inputs) often: keep it a small index. (ix_md_message_awaiting_ack, for the
        # resend sweep, follows the class.)
        Index(
            "ix_md_message_answerable_creation",
            "creation_date",
            postgresql_where=text("sender IN ('user', 'system')"),
        ),
    )

    @property
    def text(self) -> str:
        return str(self.message.get("text", ""))


def text_for_model(sender: str, message: dict[str, Any]) -> str:
    """What the model sees of a stored message (its sender and JSON payload): the tagged
    text of the assistant's own answers (so it knows the draft it wrote), the plain text
    otherwise."""
    if sender == MOJO_SENDER:
        return str(message.get("text_with_tags") or message.get("text", ""))
    return str(message.get("text", ""))


def awaiting_ack() -> ColumnElement[bool]:
    """An assistant message stored for a client and not acknowledged yet: what the
    resend sweep, the replay on joining a session and the metrics all look for."""
    return and_(
        Message.sender == MOJO_SENDER,
        Message.acknowledged_at.is_(None),
        Message.in_error_state.is_(None),
    )


# The resend sweep scans these by last delivery, several times a second: a small index.
Index("ix_md_message_awaiting_ack", Message.last_delivery_at, postgresql_where=awaiting_ack())


class TurnUsage(db.Model):
    """What one LLM call cost a user: an assistant turn (with its reply) or a title.

    One row per call, dated, with the user's id: a day's totals (GET /usage, the daily
    token limit) are one range scan of ix_md_turn_usage_user_created.
    """

    __tablename__ = "md_turn_usage"

    usage_pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("md_user.user_id", ondelete="CASCADE"))
    # The assistant message of a turn; None for a title. Kept if the message goes: the
    # tokens were spent all the same.
    message_pk: Mapped[int | None] = mapped_column(
        ForeignKey("md_message.message_pk", ondelete="SET NULL")
    )
    kind: Mapped[str] = mapped_column(String(16))
    model: Mapped[str] = mapped_column(String(255))
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    # True when the LLM reported no usage and the counts are estimates.
    estimated: Mapped[bool] = mapped_column(Boolean, default=False)
    time_to_first_token_ms: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    stopped: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (
        CheckConstraint("kind IN ('turn', 'title', 'todos')", name="usage_kind_known"),
        Index("ix_md_turn_usage_user_created", "user_id", "created_at"),
        # One row per reply: a turn run twice (a redelivered task) stores one.
        Index(
            "uq_md_turn_usage_message_pk",
            "message_pk",
            unique=True,
            postgresql_where=text("message_pk IS NOT NULL"),
        ),
    )


class Task(db.Model):
    """A catalogue entry: what the model must produce and what it needs first."""

    __tablename__ = "md_task"

    task_pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # Stable identifier used by the catalogue file and the CLI loader.
    name_for_system: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text)
    icon: Mapped[str] = mapped_column(String(32), default="📝")
    type: Mapped[str] = mapped_column(String(32), default="instruct")
    definition_for_system: Mapped[str] = mapped_column(Text)
    # [{"info_name": ..., "description": ...}]: facts to collect before writing.
    infos_to_extract: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    # [{"input_name", "description_for_user", "placeholder", "type"}]: the start form.
    inputs: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    final_instruction: Mapped[str] = mapped_column(Text, default="")
    output_format: Mapped[str] = mapped_column(Text, default="")
    output_text_type: Mapped[str] = mapped_column(String(64), default="document")
    # Enabled for every new user.
    default_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    creation_date: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class UserTask(db.Model):
    """A task made available to a user."""

    __tablename__ = "md_user_task"

    user_task_pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("md_user.user_id", ondelete="CASCADE"))
    task_fk: Mapped[int] = mapped_column(ForeignKey("md_task.task_pk", ondelete="CASCADE"))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)

    __table_args__ = (Index("uq_md_user_task_user_task", "user_id", "task_fk", unique=True),)


class UserTaskExecution(db.Model):
    """One run of a user task, with its own session in "form" mode."""

    __tablename__ = "md_user_task_execution"

    user_task_execution_pk: Mapped[int] = mapped_column(
        Integer, primary_key=True, autoincrement=True
    )
    user_task_fk: Mapped[int] = mapped_column(
        ForeignKey("md_user_task.user_task_pk", ondelete="CASCADE"), index=True
    )
    session_id: Mapped[str] = mapped_column(
        ForeignKey("md_session.session_id", ondelete="CASCADE"), unique=True
    )
    # The start form: the task's inputs with the values the user gave.
    json_inputs: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    start_date: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    end_date: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    title: Mapped[str | None] = mapped_column(String(255))
    summary: Mapped[str | None] = mapped_column(Text)
    creation_date: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When the follow-up actions (todos) of its first draft were extracted.
    todos_extracted: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ProducedText(db.Model):
    """A text the assistant wrote for a user (a draft), kept with its versions."""

    __tablename__ = "md_produced_text"

    produced_text_pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(
        ForeignKey("md_user.user_id", ondelete="CASCADE"), index=True
    )
    user_task_execution_fk: Mapped[int | None] = mapped_column(
        ForeignKey("md_user_task_execution.user_task_execution_pk", ondelete="CASCADE"),
        unique=True,
    )
    session_id: Mapped[str | None] = mapped_column(
        ForeignKey("md_session.session_id", ondelete="CASCADE")
    )
    creation_date: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ProducedTextVersion(db.Model):
    """Version N of a produced text: by the assistant (a draft) or by the user (an edit)."""

    __tablename__ = "md_produced_text_version"

    produced_text_version_pk: Mapped[int] = mapped_column(
        Integer, primary_key=True, autoincrement=True
    )
    produced_text_fk: Mapped[int] = mapped_column(
        ForeignKey("md_produced_text.produced_text_pk", ondelete="CASCADE")
    )
    version_index: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(Text, default="")
    production: Mapped[str] = mapped_column(Text, default="")
    text_type: Mapped[str] = mapped_column(String(64), default="document")
    author: Mapped[str] = mapped_column(String(16), default="assistant")
    creation_date: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (
        # Version numbers are dense and unique per text: two writers cannot both
        # create version N.
        Index(
            "uq_md_produced_text_version_index",
            "produced_text_fk",
            "version_index",
            unique=True,
        ),
        CheckConstraint("author IN ('assistant', 'user')", name="author_known"),
    )


class Todo(db.Model):
    """A follow-up action the assistant found in a task execution's draft."""

    __tablename__ = "md_todo"

    todo_pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_task_execution_fk: Mapped[int] = mapped_column(
        ForeignKey("md_user_task_execution.user_task_execution_pk", ondelete="CASCADE"),
        index=True,
    )
    description: Mapped[str] = mapped_column(Text)
    # The day it is due, in the user's time zone.
    scheduled_date: Mapped[date] = mapped_column(Date)
    creation_date: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    completed: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    read_by_user: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    deleted_by_user: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
