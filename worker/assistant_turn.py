"""An assistant turn: answer one stored user message.

Rebuilds the conversation from the stored messages, streams the answer from
the LLM as coalesced `mojo_token` emits, stores the assistant message and
emits `mojo_message`. Idempotent: at most one reply per user message,
enforced by a unique index, so a turn run twice (a worker lost mid-turn)
stores and announces one answer.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert

from common import llm
from common.db import with_db_session
from common.emitter import emit_to_session
from common.models import MOJO_SENDER, USER_SENDER, Message, Session, User
from common.prompts import render_prompt
from common.settings import get_settings
from worker.streaming import TokenCoalescer

log = logging.getLogger(__name__)

# How many earlier messages the model sees.
HISTORY_LIMIT = 50


class AssistantTurn:
    """One assistant reply to the user message `user_message_pk`."""

    def __init__(self, user_message_pk: int):
        self.user_message_pk = user_message_pk
        self.session_id: str = ""

    def run(self) -> int | None:
        """Answer the user message; return the stored reply's pk, or None if
        there was nothing to do (unknown message, already answered)."""
        conversation = self._load_conversation()
        if conversation is None:
            return None
        try:
            answer = self._stream_answer(conversation)
        except llm.LLMError as exc:
            log.warning("turn for message %s failed: %s", self.user_message_pk, exc)
            self._store_failure(str(exc))
            return None
        return self._store_and_announce(answer)

    def _load_conversation(self) -> list[dict[str, str]] | None:
        with with_db_session() as db:
            user_message = db.get(Message, self.user_message_pk)
            if user_message is None or user_message.sender != USER_SENDER:
                log.warning("no user message %s: nothing to answer", self.user_message_pk)
                return None
            answered = db.scalar(
                select(Message.message_pk).where(Message.in_reply_to_pk == self.user_message_pk)
            )
            if answered is not None:
                log.info("message %s already answered by %s", self.user_message_pk, answered)
                return None
            self.session_id = user_message.session_id
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
        interval_s = get_settings().token_emit_interval_ms / 1000
        coalescer = TokenCoalescer(
            interval_s,
            lambda text: emit_to_session("mojo_token", {"text": text}, self.session_id),
        )
        answer = ""
        for delta in llm.stream_chat(conversation):
            answer += delta
            coalescer.push(answer)
        coalescer.flush()
        return answer

    def _insert_reply(self, message: dict[str, Any], error: str | None = None) -> int | None:
        """Insert the reply unless one exists; return its pk if this call stored it."""
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
                Session.__table__.update()
                .where(Session.session_id == self.session_id)
                .values(last_message_date=now)
            )
            db.commit()
        return pk

    def _store_and_announce(self, answer: str) -> int | None:
        pk = self._insert_reply({"text": answer, "text_with_tags": answer})
        if pk is None:
            log.info("message %s was answered by another run", self.user_message_pk)
            return None
        emit_to_session(
            "mojo_message",
            {
                "message_pk": pk,
                "text": answer,
                "text_with_tags": answer,
                "user_task_execution_pk": None,
                "audio": False,
            },
            self.session_id,
        )
        return pk

    def _store_failure(self, error: str) -> None:
        public_error = "The assistant could not answer this message. Please try again."
        pk = self._insert_reply({"text": "", "error": public_error}, error=error)
        if pk is not None:
            emit_to_session(
                "error",
                {"error": public_error, "user_message_pk": self.user_message_pk},
                self.session_id,
            )
