"""Todos: the follow-up actions the LLM finds in a task execution's first draft.

Sent by name (TODOS_TASK) on its own queue when a turn stores a draft, with the
execution's pk. The LLM call comes first; the todos and the execution's
`todos_extracted` mark are then stored in one transaction that only the first run
may commit, so a redelivered or repeated task stores nothing twice.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select

from common import llm
from common.celery.app import celery_app
from common.celery.task_names import TODOS_TASK
from common.db import with_db_session
from common.llm.context_window import TokenCounter
from common.llm.failover import complete_prompt
from common.models import ProducedText, Todo
from common.prompts import render_prompt
from common.queries import todos as todo_queries
from common.queries import usage as usage_queries
from common.queries.executions import execution_with_task
from common.queries.produced_texts import latest_version
from common.queries.usage import usage_columns
from common.settings import get_settings
from common.user_time import user_now

log = logging.getLogger(__name__)

MAX_TODOS = 10
DESCRIPTION_MAX_LENGTH = 500
# The JSON object in the answer, even if the model wrapped it in prose or a code fence.
_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


def parse_todos(answer: str, today: date) -> list[tuple[str, date]]:
    """(description, due date) pairs from the model's answer; due dates before today
    become today, items without a usable description or date are dropped."""
    found = _JSON_OBJECT.search(answer)
    if found is None:
        return []
    try:
        items = json.loads(found.group(0)).get("todos", [])
    except (ValueError, AttributeError):
        return []
    todos: list[tuple[str, date]] = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict):
            continue
        description = " ".join(str(item.get("description", "")).split())
        try:
            due = date.fromisoformat(str(item.get("due_date", "")))
        except ValueError:
            continue
        if description:
            todos.append((description[:DESCRIPTION_MAX_LENGTH], max(due, today)))
    return todos[:MAX_TODOS]


def _prompt(user_task_execution_pk: int) -> tuple[str, date, str] | None:
    """The extraction prompt, the user's today and the user's id, or None if there is
    nothing to do."""
    with with_db_session() as db:
        row = execution_with_task(db, user_task_execution_pk)
        if row is None or row.UserTaskExecution.todos_extracted is not None:
            return None
        produced_text = db.scalar(
            select(ProducedText).where(
                ProducedText.user_task_execution_fk == user_task_execution_pk
            )
        )
        draft = latest_version(db, produced_text.produced_text_pk) if produced_text else None
        if draft is None:
            return None
        user = todo_queries.execution_owner(db, user_task_execution_pk)
        today = user_now(user.timezone_offset if user else None).date()
        context = {
            "today": today.isoformat(),
            "language_code": user.language_code if user else None,
            "task_name": row.Task.name,
            "max_todos": MAX_TODOS,
        }
        text = draft.production
    prompt = render_prompt("todos", **context, draft=_fitting_draft(text, context))
    return prompt, today, row.user_id


def _fitting_draft(draft: str, context: dict[str, Any]) -> str:
    """The draft, or as much of its start as the model's window holds beside the rest of
    the prompt (a draft near the window's size, or a user's longer edit of it, would
    leave no room for the instructions)."""
    settings = get_settings()
    counter = TokenCounter(settings.llm_model)
    frame = counter.count_prompt(
        [{"role": "user", "content": render_prompt("todos", **context, draft="")}]
    )
    fitting = counter.truncate(draft, max(0, settings.prompt_budget_tokens - frame))
    if len(fitting) < len(draft):
        log.info("todos: %d of the draft's %d characters fit the window", len(fitting), len(draft))
    return fitting


@celery_app.task(
    bind=True, name=TODOS_TASK, ignore_result=True, max_retries=2, default_retry_delay=2
)
def extract_todos(self: Any, user_task_execution_pk: int) -> int | None:
    """Store the todos of the execution's draft, once; how many, or None if done before."""
    prepared = _prompt(user_task_execution_pk)
    if prepared is None:
        return None
    prompt, today, user_id = prepared
    try:
        answer, usage, duration_ms = complete_prompt(prompt, kind="todos")
    except llm.LLMError as exc:
        raise self.retry(exc=exc) from exc
    todos = parse_todos(answer, today)
    with with_db_session() as db:
        if not todo_queries.claim_extraction(db, user_task_execution_pk, datetime.now(UTC)):
            return None
        # The extraction costs the user tokens too (GET /usage and the daily limit).
        columns = usage_columns(usage, duration_ms=duration_ms)
        usage_queries.record_background_usage(db, user_id, "todos", columns, datetime.now(UTC))
        db.add_all(
            Todo(
                user_task_execution_fk=user_task_execution_pk,
                description=description,
                scheduled_date=due,
            )
            for description, due in todos
        )
        db.commit()
    llm.count_tokens(usage)
    log.info("execution %s: %s todo(s)", user_task_execution_pk, len(todos))
    return len(todos)
