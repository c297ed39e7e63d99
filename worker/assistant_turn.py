"""An assistant turn: answer one stored user message (or a task run's inputs).

Rebuilds the conversation from the stored messages, streams the answer from
the LLM as coalesced `mojo_token` emits, stores the assistant message and
starts its acknowledged delivery (`mojo_message`). In a task execution's
session the model may write the result inside tags: that part streams as
`draft_token`, is stored as a new version of the execution's produced text,
and the turn ends with a `draft_message` instead.

Idempotent and recoverable: the turn first claims the user message with a
lease (renewed while streaming), so a redelivered task does not run it twice
at once, and a turn whose worker died is restarted by the recovery sweep once
the lease runs out. At most one reply per user message is stored, enforced by
a unique index, and only the run that stored it announces it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session as OrmSession

from common import llm, metrics
from common.celery.app import celery_app
from common.celery.task_names import TITLE_TASK, TODOS_TASK
from common.db import autocommit_connection, with_db_session
from common.delivery.emitter import emit_to_session
from common.delivery.protocol import StoredReply
from common.llm.context_window import TokenCounter, fit_conversation
from common.llm.failover import call_with_fallback
from common.llm.providers import Provider
from common.models import (
    MOJO_SENDER,
    ChatSession,
    ProducedText,
    Task,
    UserTask,
    UserTaskExecution,
    text_for_model,
)
from common.prompts import render_prompt
from common.queries import messages as message_queries
from common.queries.produced_texts import add_version, latest_version
from common.queries.usage import usage_columns
from common.settings import get_settings
from common.tagged_stream import TaggedStreamParser, TaggedText
from common.turn_stop import may_show_first_token, stop_requested
from common.user_time import prompt_dates
from worker.delivery_sweep import deliver_first
from worker.streaming import TokenCoalescer

log = logging.getLogger(__name__)

PUBLIC_ERROR = "The assistant could not answer this message. Please try again."
# A running turn reads its stop flag (one Redis round trip) at most this often.
STOP_POLL_INTERVAL_S = 0.1
# Older history is read by this many messages at a time, and never more than this many
# messages in all: every turn sends its history again, and past a thousand messages a
# session's start matters less than the cost of sending it each time.
OLDER_HISTORY_PAGE = 200
MAX_HISTORY_MESSAGES = 1000


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _prompt_message(sender: str, message: dict[str, Any]) -> dict[str, str]:
    """A stored message as the model reads it in the conversation."""
    role = "assistant" if sender == MOJO_SENDER else "user"
    return {"role": role, "content": text_for_model(sender, message)}


class TurnDeadlineExceeded(Exception):
    """The turn ran past TURN_DEADLINE_S: it is ended, not retried."""


@dataclass
class TaskContext:
    """What a turn in a task execution's session needs to know."""

    user_task_execution_pk: int
    task: Task
    is_first_turn: bool
    needs_title: bool


@dataclass
class Answer:
    """The finished (or stopped) answer: raw text, what its tags say in a task turn, and
    what it cost."""

    raw: str
    tagged: TaggedText | None = None
    usage: llm.Usage | None = None
    stopped: bool = False
    finish_reason: str | None = None
    time_to_first_token_ms: int | None = None
    duration_ms: int | None = None

    @property
    def user_text(self) -> str:
        return self.tagged.outside.strip() if self.tagged else self.raw

    @property
    def has_draft(self) -> bool:
        # A stopped answer's partial draft is not a version.
        return bool(
            not self.stopped
            and self.tagged
            and self.tagged.has_execution
            and self.tagged.draft.strip()
        )

    def flags(self) -> dict[str, bool]:
        """The message's flags: each present only when it happened."""
        flags = {
            "stopped": self.stopped,
            "truncated": self.finish_reason == "length",
            "filtered": self.finish_reason == "content_filter",
        }
        return {name: True for name, value in flags.items() if value}


class AssistantTurn:
    """One assistant reply to the message `user_message_pk`, run by `task_id`."""

    def __init__(self, user_message_pk: int, task_id: str):
        self.user_message_pk = user_message_pk
        self.task_id = task_id
        self.session_id: str = ""
        self.task: TaskContext | None = None
        self._settings = get_settings()
        self._lease_renewed_at = 0.0
        # Once a token was shown, a failure is not switched to the fallback.
        self._first_token_seen = False

    def run(self) -> int | None:
        """Answer the message; the stored reply's pk, or None if there was
        nothing to do (unknown message, already answered, held by another run).

        LLM errors propagate for the task to retry; `fail` ends the turn."""
        # The claim and the read of the conversation are one statement that commits on its
        # own: one round trip on the path of the first token, no BEGIN and COMMIT.
        with autocommit_connection(durable=False) as connection:
            rows = message_queries.claim_turn_with_history(
                connection, self.user_message_pk, self.task_id, *self._lease()
            )
            if not self._claimed(rows[0] if rows else None):
                return None
            history_rows = [row for row in rows if row.sender is not None]
            history = [(row.sender, row.message) for row in history_rows]
            conversation = self._load_conversation(connection, rows[0], history)
            if len(history_rows) == message_queries.HISTORY_LIMIT:
                conversation = self._with_older_history(connection, conversation, history_rows[-1])
        if stop_requested(self.user_message_pk):
            # Stopped while queued: end at once, with an empty text and no LLM call.
            usage = llm.Usage(self._settings.llm_model, 0, 0, estimated=False)
            return self._store_and_deliver(Answer("", usage=usage, stopped=True, duration_ms=0))
        answer = self._stream_from_providers(self._fit_in_window(conversation))
        return self._store_and_deliver(answer)

    def _stream_from_providers(self, prompt: list[dict[str, str]]) -> Answer:
        """Stream from the primary, or from the fallback if the primary fails for an outage
        before the first token or its breaker is open (common/llm/failover.py). After the
        first token a failure propagates, for the task to retry, as without a fallback."""
        return call_with_fallback(
            lambda provider: self._stream_within_window(prompt, provider),
            kind="turn",
            may_switch=lambda: not self._first_token_seen,
        )

    def _with_older_history(
        self, connection: Connection, conversation: list[dict[str, str]], oldest: Any
    ) -> list[dict[str, str]]:
        """The conversation with older messages before its history, page by page, until the
        model's window is full, the session's start, or MAX_HISTORY_MESSAGES. Only a session
        longer than the claim's HISTORY_LIMIT whose every message still fits pays for it."""
        counter = TokenCounter(self._settings.llm_model)
        budget = self._settings.prompt_budget_tokens
        used = counter.count_prompt(conversation)
        older: list[dict[str, str]] = []  # newest first
        loaded = len(conversation) - 1  # all but the system prompt
        while used <= budget and loaded < MAX_HISTORY_MESSAGES:
            page = message_queries.older_history(
                connection,
                self.session_id,
                oldest.message_date,
                oldest.message_pk,
                min(OLDER_HISTORY_PAGE, MAX_HISTORY_MESSAGES - loaded),
            )
            for row in page:
                message = _prompt_message(row.sender, row.message)
                older.append(message)
                used += counter.count_message(message)
            loaded += len(page)
            if len(page) < OLDER_HISTORY_PAGE:
                break
            oldest = page[-1]
        return [conversation[0], *reversed(older), *conversation[1:]]

    def _fit_in_window(self, conversation: list[dict[str, str]]) -> list[dict[str, str]]:
        """The prompt that fits the model's window: the system prompt (with a task's
        instructions) and the message answered always, then the newest history that fits."""
        system, history, current = conversation[0], conversation[1:-1], conversation[-1]
        prompt = fit_conversation(
            TokenCounter(self._settings.llm_model),
            system,
            history,
            current,
            self._settings.prompt_budget_tokens,
        )
        if len(prompt) < len(conversation):
            log.info(
                "turn for message %s: %d of %d history messages fit the context window",
                self.user_message_pk,
                len(prompt) - 2,
                len(history),
            )
        return prompt

    def _stream_within_window(self, prompt: list[dict[str, str]], provider: Provider) -> Answer:
        """Stream the answer; if the LLM still finds the prompt too long for its window
        (its tokenizer is not ours), try once more with the newer half of the history."""
        try:
            return self._stream_answer(prompt, provider)
        except llm.LLMError as exc:
            if not llm.is_context_length_exceeded(exc):
                raise
            history = prompt[1:-1]
            kept = history[len(history) - len(history) // 2 :]
            log.warning(
                "turn for message %s: the LLM found the prompt longer than its context "
                "window; retrying once with %d of the %d history messages sent",
                self.user_message_pk,
                len(kept),
                len(history),
            )
            return self._stream_answer([prompt[0], *kept, prompt[-1]], provider)

    def claim(self, extra_s: float = 0.0) -> bool:
        """Take (or keep) the lease on the message, unless it is answered or
        held by another live run."""
        # Not durable: a lease lost in a crash only lets the recovery sweep run the turn
        # again, and the unique reply index keeps that to one answer.
        with autocommit_connection(durable=False) as connection:
            claimed = message_queries.claim_turn(
                connection, self.user_message_pk, self.task_id, *self._lease(extra_s)
            )
        return self._claimed(claimed)

    def _lease(self, extra_s: float = 0.0) -> tuple[datetime, datetime]:
        """Now, and when a lease taken now runs out."""
        now = datetime.now(UTC)
        return now, now + timedelta(seconds=self._settings.turn_lease_s + extra_s)

    def _claimed(self, claimed: Any) -> bool:
        """Note a claim's answer (a row with the session id, or None if not claimed)."""
        if claimed is None:
            log.info("turn for message %s: answered or held elsewhere", self.user_message_pk)
            return False
        self.session_id = claimed.session_id
        self._lease_renewed_at = time.monotonic()
        return True

    def _renew_lease_if_due(self) -> None:
        if time.monotonic() - self._lease_renewed_at >= self._settings.turn_lease_s / 3:
            self.claim()

    def _load_conversation(
        self, connection: Connection, session: Any, history: list[tuple[str, Any]]
    ) -> list[dict[str, str]]:
        """The prompt: `session` is the claim's row (mode, user name and language),
        `history` the (sender, message) pairs, newest first: Core rows, not ORM entities
        (docs/performance.md, "Claim with history")."""
        context = {
            "user_name": session.name,
            "language_code": session.language_code,
            # Dates as the user lives them: "tomorrow" means the user's tomorrow.
            **prompt_dates(session.timezone_offset),
        }
        if session.mode == "form":
            with OrmSession(bind=connection) as db:
                system = self._task_prompt(db, context, history)
        else:
            system = render_prompt("chat_system", **context)
        older_first = [_prompt_message(sender, message) for sender, message in reversed(history)]
        return [{"role": "system", "content": system}, *older_first]

    def _task_prompt(self, db: Any, context: dict[str, Any], history: list[tuple[str, Any]]) -> str:
        row = db.execute(
            select(UserTaskExecution, Task)
            .join(UserTask, UserTask.user_task_pk == UserTaskExecution.user_task_fk)
            .join(Task, Task.task_pk == UserTask.task_fk)
            .where(UserTaskExecution.session_id == self.session_id)
        ).first()
        execution, task = row.UserTaskExecution, row.Task
        produced_text = db.scalar(
            select(ProducedText).where(
                ProducedText.user_task_execution_fk == execution.user_task_execution_pk
            )
        )
        draft = latest_version(db, produced_text.produced_text_pk) if produced_text else None
        self.task = TaskContext(
            user_task_execution_pk=execution.user_task_execution_pk,
            task=task,
            is_first_turn=not any(sender == MOJO_SENDER for sender, _ in history),
            needs_title=execution.title is None,
        )
        inputs = [item for item in execution.json_inputs if item.get("value")]
        return render_prompt("task_system", task=task, inputs=inputs, draft=draft, **context)

    def _stream_answer(self, conversation: list[dict[str, str]], provider: Provider) -> Answer:
        interval_s = self._settings.token_emit_interval_ms / 1000
        max_interval_s = self._settings.token_emit_max_interval_ms / 1000
        mojo_tokens: TokenCoalescer[str] = TokenCoalescer(
            interval_s,
            lambda text: emit_to_session("mojo_token", {"text": text}, self.session_id),
            max_interval_s,
        )
        draft_tokens: TokenCoalescer[TaggedText] = TokenCoalescer(
            interval_s,
            self._emit_draft_token,
            max_interval_s,
            length=lambda state: len(state.title) + len(state.draft),
        )
        parser = TaggedStreamParser() if self.task else None
        started = time.monotonic()
        deadline = started + self._settings.turn_deadline_s
        raw = ""
        first_token_at: float | None = None
        stopped = False
        stop_checked_at = started
        shown = TaggedText(outside="", title="", draft="", has_execution=False)
        stream = llm.stream_chat(conversation, provider)
        for delta in stream:
            now = time.monotonic()
            if first_token_at is None:
                first_token_at = now
                if not may_show_first_token(self.user_message_pk):
                    # Stopped while it waited for this token: the stop request stored the
                    # empty, stopped answer. Storing it here too finds it stored.
                    stream.close()
                    stopped = True
                    break
                self._first_token_seen = True
                metrics.record_time_to_first_token(now - started)
            if now - stop_checked_at >= STOP_POLL_INTERVAL_S:
                stop_checked_at = now
                if stop_requested(self.user_message_pk):
                    # Closing the response closes the connection: the LLM stops sending
                    # (and billing). The chunk in hand is not shown: the user pressed Stop.
                    stream.close()
                    stopped = True
                    break
            raw += delta
            if parser is None:
                mojo_tokens.push(raw)
            else:
                state = parser.feed(delta)
                if state.outside != shown.outside:
                    mojo_tokens.push(state.outside)
                if (state.title, state.draft) != (shown.title, shown.draft):
                    draft_tokens.push(state)
                shown = state
            self._renew_lease_if_due()
            if time.monotonic() > deadline:
                raise TurnDeadlineExceeded(f"turn ran past {self._settings.turn_deadline_s}s")
        mojo_tokens.flush()
        draft_tokens.flush()
        ended = time.monotonic()
        return Answer(
            raw,
            parser.finish() if parser else None,
            usage=stream.usage(),
            stopped=stopped,
            finish_reason=stream.finish_reason,
            time_to_first_token_ms=_ms(first_token_at - started) if first_token_at else None,
            duration_ms=_ms(ended - started),
        )

    def _emit_draft_token(self, state: TaggedText) -> None:
        emit_to_session(
            "draft_token",
            {"produced_text_title": state.title, "produced_text": state.draft, "text": state.draft},
            self.session_id,
        )

    def _insert_reply(
        self,
        db: Any,
        message: dict[str, Any],
        event_name: str,
        usage: dict[str, Any] | None = None,
        **extra: Any,
    ):
        """Insert the reply (and its usage) unless one exists; its pk if this call
        stored it."""
        return message_queries.insert_reply(
            db,
            session_id=self.session_id,
            in_reply_to_pk=self.user_message_pk,
            message=message,
            event_name=event_name,
            now=datetime.now(UTC),
            usage=usage,
            **extra,
        )

    def _store_and_deliver(self, answer: Answer) -> int | None:
        message: dict[str, Any] = {"text": answer.user_text, "text_with_tags": answer.raw}
        if self.task:
            message["user_task_execution_pk"] = self.task.user_task_execution_pk
        usage = None
        if answer.usage is not None:
            message["usage"] = answer.usage.as_json()
            usage = usage_columns(
                answer.usage,
                time_to_first_token_ms=answer.time_to_first_token_ms,
                duration_ms=answer.duration_ms,
                stopped=answer.stopped,
            )
        message.update(answer.flags())
        event_name = "draft_message" if answer.has_draft else "mojo_message"
        # Stored as delivered once, in the same statement: the delivery below follows the
        # commit, with no transaction of its own (docs/performance.md, "Reply stored as
        # delivered"). If the worker dies before publishing, the resend sweep delivers the
        # message RESEND_INTERVAL_S later.
        delivered = {"delivery_attempts": 1, "last_delivery_at": datetime.now(UTC)}
        if answer.has_draft:
            # The reply and the draft's new version, in one transaction.
            with with_db_session() as db:
                pk = self._insert_reply(db, message, event_name, usage, **delivered)
                if pk is not None:
                    message = {**message, **self._store_draft(db, answer)}
                    message_queries.set_message_body(db, pk, message)
                    db.commit()
        else:
            # One statement, committing on its own (no BEGIN and COMMIT round trips).
            with autocommit_connection() as connection:
                pk = self._insert_reply(connection, message, event_name, usage, **delivered)
        if pk is None:
            log.info("message %s was answered by another run", self.user_message_pk)
            return None
        if answer.usage is not None:
            llm.count_tokens(answer.usage)
        if answer.stopped:
            metrics.increment("turns_stopped")
        deliver_first(StoredReply(pk, self.session_id, event_name, message))
        if self.task and self.task.needs_title:
            celery_app.send_task(TITLE_TASK, args=[self.task.user_task_execution_pk])
        if self.task and answer.has_draft:
            # Does nothing once the execution's todos were extracted.
            celery_app.send_task(TODOS_TASK, args=[self.task.user_task_execution_pk])
        return pk

    def _store_draft(self, db: Any, answer: Answer) -> dict[str, Any]:
        """Store the draft as the next version of the execution's produced text."""
        assert self.task is not None and answer.tagged is not None
        execution_pk = self.task.user_task_execution_pk
        produced_text = db.scalar(
            select(ProducedText).where(ProducedText.user_task_execution_fk == execution_pk)
        )
        if produced_text is None:
            produced_text = ProducedText(
                user_id=db.get(ChatSession, self.session_id).user_id,
                user_task_execution_fk=execution_pk,
                session_id=self.session_id,
            )
            db.add(produced_text)
            db.flush()
        version = add_version(
            db,
            produced_text,
            title=answer.tagged.title,
            production=answer.tagged.draft.strip(),
            text_type=self.task.task.output_text_type,
            author="assistant",
        )
        return {
            "produced_text": version.production,
            "produced_text_title": version.title,
            "produced_text_pk": produced_text.produced_text_pk,
            "produced_text_version_pk": version.produced_text_version_pk,
            "produced_text_version_index": version.version_index,
            "text_type": version.text_type,
        }

    def fail(self, error: str) -> None:
        """End the turn: store a reply in error state and tell the room."""
        if not self.session_id and not self.claim():
            return
        now = datetime.now(UTC)
        with with_db_session() as db:
            pk = self._insert_reply(
                db,
                {"text": "", "error": PUBLIC_ERROR},
                "mojo_message",
                in_error_state=now,
                error_text=error,
            )
            db.commit()
        if pk is not None:
            emit_to_session(
                "error",
                {"error": PUBLIC_ERROR, "user_message_pk": self.user_message_pk},
                self.session_id,
            )
