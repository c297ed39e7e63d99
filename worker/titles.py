"""Titles of task executions, written by the LLM after the first turn."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import select, update

from common import llm
from common.celery.app import celery_app
from common.celery.task_names import TITLE_TASK
from common.db import with_db_session
from common.delivery.emitter import emit_to_session
from common.llm.context_window import TokenCounter
from common.llm.failover import complete_prompt
from common.models import MOJO_SENDER, ChatSession, Message, UserTaskExecution
from common.prompts import render_prompt
from common.queries import usage as usage_queries
from common.queries.executions import execution_with_task
from common.queries.usage import usage_columns
from common.settings import get_settings

log = logging.getLogger(__name__)

TITLE_MAX_LENGTH = 255
# The title is written from the start of the conversation, and from the start of each of
# its messages: a pasted document would otherwise cost its whole length in every title
# request, and could overflow the model's window.
MESSAGES_FOR_TITLE = 4
TOKENS_PER_MESSAGE_FOR_TITLE = 500


@celery_app.task(
    bind=True, name=TITLE_TASK, ignore_result=True, max_retries=2, default_retry_delay=2
)
def generate_execution_title(self, user_task_execution_pk: int) -> str | None:
    """Give the execution (and its session) a title, once, and tell the room."""
    with with_db_session() as db:
        row = execution_with_task(db, user_task_execution_pk)
        if row is None or row.UserTaskExecution.title is not None:
            return None
        session_id = row.UserTaskExecution.session_id
        user_id = row.user_id
        messages = db.scalars(
            select(Message)
            .where(Message.session_id == session_id, Message.in_error_state.is_(None))
            .order_by(Message.message_pk)
            .limit(MESSAGES_FOR_TITLE)
        ).all()
        task_name = row.Task.name
    counter = TokenCounter(get_settings().llm_model)
    conversation = [
        {
            "role": "assistant" if m.sender == MOJO_SENDER else "user",
            "content": counter.truncate(m.text, TOKENS_PER_MESSAGE_FOR_TITLE),
        }
        for m in messages
    ]
    prompt = render_prompt("title", task_name=task_name, conversation=conversation)
    try:
        title, usage, duration_ms = complete_prompt(prompt, kind="title")
    except llm.LLMError as exc:
        raise self.retry(exc=exc) from exc
    title = " ".join(title.strip().strip('"').split())[:TITLE_MAX_LENGTH] or task_name
    with with_db_session() as db:
        stored = db.scalar(
            update(UserTaskExecution)
            .where(
                UserTaskExecution.user_task_execution_pk == user_task_execution_pk,
                UserTaskExecution.title.is_(None),
            )
            .values(title=title)
            .returning(UserTaskExecution.user_task_execution_pk)
        )
        db.execute(
            update(ChatSession).where(ChatSession.session_id == session_id).values(title=title)
        )
        # Title requests cost the user tokens too (counted in GET /usage and the limit).
        columns = usage_columns(usage, duration_ms=duration_ms)
        usage_queries.record_background_usage(db, user_id, "title", columns, datetime.now(UTC))
        db.commit()
    llm.count_tokens(usage)
    if stored is not None:
        emit_to_session("user_task_execution_title", {"title": title}, session_id)
    return title
