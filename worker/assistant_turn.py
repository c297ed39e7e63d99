"""An assistant turn: answer one stored user message.

Rebuilds the conversation from the stored messages, streams the answer from
the LLM as coalesced `mojo_token` emits, stores the assistant message and
starts its acknowledged delivery (`mojo_message`).

Idempotent and recoverable: the turn first claims the user message with a
lease (renewed while streaming), so a redelivered task does not run it twice
at once, and a turn whose worker died is restarted by the recovery sweep once
the lease runs out. At most one reply per user message is stored, enforced by
a unique index, and only the run that stored it announces it.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import exists, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import aliased

from common import llm
from common.db import with_db_session
from common.emitter import emit_to_session
from common.models import MOJO_SENDER, USER_SENDER, Message, Session, User
from common.prompts import render_prompt
from common.settings import get_settings
from worker.delivery import start_delivery
from worker.streaming import TokenCoalescer

log = logging.getLogger(__name__)

# How many earlier messages the model sees.
HISTORY_LIMIT = 50
PUBLIC_ERROR = "The assistant could not answer this message. Please try again."


class TurnDeadlineExceeded(Exception):
    """The turn ran past TURN_DEADLINE_S: it is ended, not retried."""


class AssistantTurn:
    """One assistant reply to the user message `user_message_pk`, run by `task_id`."""

    def __init__(self, user_message_pk: int, task_id: str):
        self.user_message_pk = user_message_pk
        self.task_id = task_id
        self.session_id: str = ""
        self._settings = get_settings()
        self._lease_renewed_at = 0.0

    def run(self) -> int | None:
        """Answer the user message; the stored reply's pk, or None if there was
        nothing to do (unknown message, already answered, held by another run).

        LLM errors propagate for the task to retry; `fail` ends the turn."""
        if not self.claim():
            return None
        conversation = self._load_conversation()
        answer = self._stream_answer(conversation)
        return self._store_and_deliver(answer)

    def claim(self, extra_s: float = 0.0) -> bool:
        """Take (or keep) the lease on the user message, unless it is answered
        or held by another live run."""
        now = datetime.now(UTC)
        reply = aliased(Message)
        with with_db_session() as db:
            session_id = db.scalar(
                update(Message)
                .where(
                    Message.message_pk == self.user_message_pk,
                    Message.sender == USER_SENDER,
                    ~exists().where(reply.in_reply_to_pk == Message.message_pk),
                    or_(
                        Message.turn_task_id.is_(None),
                        Message.turn_task_id == self.task_id,
                        Message.turn_lease_until < now,
                    ),
                )
                .values(
                    turn_task_id=self.task_id,
                    turn_lease_until=now + timedelta(seconds=self._settings.turn_lease_s + extra_s),
                )
                .returning(Message.session_id)
            )
            db.commit()
        if session_id is None:
            log.info("turn for message %s: answered or held elsewhere", self.user_message_pk)
            return False
        self.session_id = session_id
        self._lease_renewed_at = time.monotonic()
        return True

    def _renew_lease_if_due(self) -> None:
        if time.monotonic() - self._lease_renewed_at >= self._settings.turn_lease_s / 3:
            self.claim()

    def _load_conversation(self) -> list[dict[str, str]]:
        with with_db_session() as db:
            user = db.scalar(
                select(User)
                .join(Session, Session.user_id == User.user_id)
                .where(Session.session_id == self.session_id)
            )
            history = db.scalars(
                select(Message)
                .where(
                    Message.session_id == self.session_id,
                    Message.message_pk <= self.user_message_pk,
                    Message.in_error_state.is_(None),
                )
                .order_by(Message.message_date.desc(), Message.message_pk.desc())
                .limit(HISTORY_LIMIT)
            ).all()
        system = render_prompt(
            "chat_system",
            user_name=user.name if user else None,
            language_code=user.language_code if user else None,
            today=datetime.now(UTC).date().isoformat(),
        )
        conversation = [{"role": "system", "content": system}]
        for message in reversed(history):
            role = "user" if message.sender == USER_SENDER else "assistant"
            conversation.append({"role": role, "content": message.text})
        return conversation

    def _stream_answer(self, conversation: list[dict[str, str]]) -> str:
        coalescer = TokenCoalescer(
            self._settings.token_emit_interval_ms / 1000,
            lambda text: emit_to_session("mojo_token", {"text": text}, self.session_id),
        )
        deadline = time.monotonic() + self._settings.turn_deadline_s
        answer = ""
        for delta in llm.stream_chat(conversation):
            answer += delta
            coalescer.push(answer)
            self._renew_lease_if_due()
            if time.monotonic() > deadline:
                raise TurnDeadlineExceeded(f"turn ran past {self._settings.turn_deadline_s}s")
        coalescer.flush()
        return answer

    def _insert_reply(self, message: dict[str, Any], error: str | None = None) -> int | None:
        """Insert the reply unless one exists; its pk if this call stored it."""
        now = datetime.now(UTC)
        with with_db_session() as db:
            pk = db.scalar(
                insert(Message)
                .values(
                    session_id=self.session_id,
                    sender=MOJO_SENDER,
                    event_name="mojo_message",
                    message=message,
                    in_reply_to_pk=self.user_message_pk,
                    message_date=now,
                    creation_date=now,
                    in_error_state=now if error else None,
                    error_text=error,
                )
                .on_conflict_do_nothing(
                    index_elements=[Message.in_reply_to_pk],
                    index_where=Message.in_reply_to_pk.isnot(None),
                )
                .returning(Message.message_pk)
            )
            db.execute(
                update(Session)
                .where(Session.session_id == self.session_id)
                .values(last_message_date=now)
            )
            db.commit()
        return pk

    def _store_and_deliver(self, answer: str) -> int | None:
        pk = self._insert_reply({"text": answer, "text_with_tags": answer})
        if pk is None:
            log.info("message %s was answered by another run", self.user_message_pk)
            return None
        start_delivery(pk)
        return pk

    def fail(self, error: str) -> None:
        """End the turn: store a reply in error state and tell the room."""
        if not self.session_id and not self.claim():
            return
        pk = self._insert_reply({"text": "", "error": PUBLIC_ERROR}, error=error)
        if pk is not None:
            emit_to_session(
                "error",
                {"error": PUBLIC_ERROR, "user_message_pk": self.user_message_pk},
                self.session_id,
            )
