"""User tasks and task executions: listing, creating, running, deleting."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, or_, select, update
from sqlalchemy.orm import aliased

from common.errors import Forbidden, NotFound, Unprocessable
from common.models import (
    SYSTEM_SENDER,
    ChatSession,
    ProducedText,
    ProducedTextVersion,
    Task,
    UserTask,
    UserTaskExecution,
)
from common.queries import todos as todo_queries
from web.extensions import db
from web.services.execution_start import mark_started
from web.services.messages import store_message_and_start_turn
from web.services.usage import check_daily_token_limit

RUN_MESSAGE_ID = "user_task_execution_run"


def _user_task_payload(user_task: UserTask, task: Task) -> dict[str, Any]:
    return {
        "user_task_pk": user_task.user_task_pk,
        "task_pk": task.task_pk,
        "task_name": task.name,
        "task_description": task.description,
        "task_icon": task.icon,
        "task_type": task.type,
        "enabled": user_task.enabled,
    }


def get_user_task(user_id: str, user_task_pk: int) -> dict[str, Any]:
    row = db.session.execute(
        select(UserTask, Task)
        .join(Task, Task.task_pk == UserTask.task_fk)
        .where(UserTask.user_task_pk == user_task_pk)
    ).first()
    if row is None:
        raise NotFound(f"Unknown user_task_pk {user_task_pk}.")
    if row.UserTask.user_id != user_id:
        raise Forbidden("This user task belongs to another user.")
    return _user_task_payload(row.UserTask, row.Task)


def list_user_tasks(user_id: str, n_user_tasks: int, offset: int) -> dict[str, Any]:
    rows = db.session.execute(
        select(UserTask, Task)
        .join(Task, Task.task_pk == UserTask.task_fk)
        .where(UserTask.user_id == user_id)
        .order_by(UserTask.user_task_pk)
        .offset(offset)
        .limit(n_user_tasks)
    ).all()
    return {"user_tasks": [_user_task_payload(row.UserTask, row.Task) for row in rows]}


def create_execution(user_id: str, user_task_pk: int) -> dict[str, Any]:
    """A new execution of a user task, with its own session in "form" mode."""
    user_task = db.session.get(UserTask, user_task_pk)
    if user_task is None:
        raise NotFound(f"Unknown user_task_pk {user_task_pk}.")
    if user_task.user_id != user_id:
        raise Forbidden("This user task belongs to another user.")
    if not user_task.enabled:
        raise Unprocessable("This task is disabled for this user.")
    task = db.session.get(Task, user_task.task_fk)
    session = ChatSession(user_id=user_id, mode="form", intro_done=False)
    db.session.add(session)
    db.session.flush()
    json_inputs = [{**spec, "value": None} for spec in task.inputs]
    execution = UserTaskExecution(
        user_task_fk=user_task_pk, session_id=session.session_id, json_inputs=json_inputs
    )
    db.session.add(execution)
    db.session.commit()
    return {
        "user_task_execution_pk": execution.user_task_execution_pk,
        "json_input": json_inputs,
        "actions": [],
        "session_id": session.session_id,
        "intro_done": session.intro_done,
    }


def _owned_execution_query(user_id: str) -> Select[Any]:
    latest = aliased(ProducedTextVersion)
    newest_version = (
        select(latest.produced_text_version_pk)
        .where(latest.produced_text_fk == ProducedText.produced_text_pk)
        .order_by(latest.version_index.desc())
        .limit(1)
        .scalar_subquery()
    )
    return (
        select(UserTaskExecution, UserTask, Task, ProducedText, ProducedTextVersion)
        .join(UserTask, UserTask.user_task_pk == UserTaskExecution.user_task_fk)
        .join(Task, Task.task_pk == UserTask.task_fk)
        .outerjoin(
            ProducedText,
            (ProducedText.user_task_execution_fk == UserTaskExecution.user_task_execution_pk)
            & ProducedText.deleted_at.is_(None),
        )
        .outerjoin(
            ProducedTextVersion,
            ProducedTextVersion.produced_text_version_pk == newest_version,
        )
        .where(UserTask.user_id == user_id, UserTaskExecution.deleted_at.is_(None))
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _execution_payload(row: Any, todo_counts: dict[int, tuple[int, int]]) -> dict[str, Any]:
    execution, task, version = row.UserTaskExecution, row.Task, row.ProducedTextVersion
    n_todos, n_not_read_todos = todo_counts.get(execution.user_task_execution_pk, (0, 0))
    return {
        "user_task_execution_pk": execution.user_task_execution_pk,
        "start_date": _iso(execution.start_date),
        "end_date": _iso(execution.end_date),
        "title": execution.title,
        "summary": execution.summary,
        "session_id": execution.session_id,
        "icon": task.icon,
        "task_name": task.name,
        "task_type": task.type,
        "user_task_pk": row.UserTask.user_task_pk,
        "json_inputs_values": execution.json_inputs,
        "produced_text_pk": row.ProducedText.produced_text_pk if row.ProducedText else None,
        "produced_text_title": version.title if version else None,
        "produced_text_production": version.production if version else None,
        "produced_text_version_pk": version.produced_text_version_pk if version else None,
        "produced_text_version_index": version.version_index if version else None,
        "text_type": version.text_type if version else task.output_text_type,
        # What the Mojodex web app's task page reads: every instruct task has its chat.
        "result_chat_enabled": True,
        "actions": [],
        "text_edit_actions": [],
        "deleted_by_user": False,
        "n_todos": n_todos,
        "n_not_read_todos": n_not_read_todos,
        # Todos are extracted in the background once the first draft is stored.
        "working_on_todos": version is not None and execution.todos_extracted is None,
        # Workflows (steps) are not part of System1: instruct tasks only.
        "steps": [],
        "step_executions": [],
    }


def _payloads(rows: list[Any]) -> list[dict[str, Any]]:
    pks = [row.UserTaskExecution.user_task_execution_pk for row in rows]
    counts = todo_queries.counts_by_execution(db.session, pks)
    return [_execution_payload(row, counts) for row in rows]


def owned_execution(user_id: str, user_task_execution_pk: int) -> UserTaskExecution:
    """The execution if it exists, is not deleted and belongs to the user."""
    row = db.session.execute(
        select(UserTaskExecution, UserTask.user_id)
        .join(UserTask, UserTask.user_task_pk == UserTaskExecution.user_task_fk)
        .where(UserTaskExecution.user_task_execution_pk == user_task_execution_pk)
    ).first()
    if row is None or row.UserTaskExecution.deleted_at is not None:
        raise NotFound(f"Unknown user_task_execution_pk {user_task_execution_pk}.")
    if row.user_id != user_id:
        raise Forbidden("This task execution belongs to another user.")
    return row.UserTaskExecution


def get_execution(user_id: str, user_task_execution_pk: int) -> dict[str, Any]:
    owned_execution(user_id, user_task_execution_pk)
    row = db.session.execute(
        _owned_execution_query(user_id).where(
            UserTaskExecution.user_task_execution_pk == user_task_execution_pk
        )
    ).first()
    return _payloads([row])[0]


def list_executions(
    user_id: str,
    n_user_task_executions: int,
    offset: int,
    search_filter: str | None,
    user_task_pks: list[int] | None = None,
) -> dict[str, Any]:
    """The executions the user started (an execution only created, its form never
    run, is not listed, as with Mojodex), of the given user tasks if any."""
    query = _owned_execution_query(user_id).where(UserTaskExecution.start_date.is_not(None))
    if user_task_pks:
        query = query.where(UserTask.user_task_pk.in_(user_task_pks))
    if search_filter:
        pattern = f"%{search_filter}%"
        query = query.where(
            or_(
                UserTaskExecution.title.ilike(pattern),
                UserTaskExecution.summary.ilike(pattern),
                Task.name.ilike(pattern),
            )
        )
    rows = db.session.execute(
        query.order_by(UserTaskExecution.user_task_execution_pk.desc())
        .offset(offset)
        .limit(n_user_task_executions)
    ).all()
    return {"user_task_executions": _payloads(list(rows))}


def _update_with_its_session(user_id: str, user_task_execution_pk: int, **values: Any) -> None:
    """Set columns the execution and its session both have (the chat list shows the
    session), in one transaction."""
    execution = owned_execution(user_id, user_task_execution_pk)
    for column, value in values.items():
        setattr(execution, column, value)
    db.session.execute(
        update(ChatSession).where(ChatSession.session_id == execution.session_id).values(**values)
    )
    db.session.commit()


def delete_execution(user_id: str, user_task_execution_pk: int) -> dict[str, Any]:
    _update_with_its_session(user_id, user_task_execution_pk, deleted_at=datetime.now(UTC))
    return {"user_task_execution_pk": user_task_execution_pk}


def run_execution(
    user_id: str, user_task_execution_pk: int, inputs: list[dict[str, str]]
) -> dict[str, Any]:
    """Store the start form's values and start the task's first assistant turn.

    Idempotent: the inputs become a message with a fixed client id in the
    execution's session, so a repeated run starts no second turn.
    """
    execution = owned_execution(user_id, user_task_execution_pk)
    check_daily_token_limit(user_id)  # before the inputs are stored
    known = {item["input_name"] for item in execution.json_inputs}
    unknown = [item["input_name"] for item in inputs if item["input_name"] not in known]
    if unknown:
        raise Unprocessable(f"Invalid field 'inputs': unknown input_name {unknown[0]!r}.")
    values = {item["input_name"]: item["value"] for item in inputs}
    execution.json_inputs = [
        {**item, "value": values.get(item["input_name"], item.get("value"))}
        for item in execution.json_inputs
    ]
    db.session.commit()
    mark_started(execution)
    lines = [f"- {item['input_name']}: {item['value']}" for item in execution.json_inputs]
    text = "Task inputs:\n" + "\n".join(lines)
    stored = store_message_and_start_turn(
        user_id,
        execution.session_id,
        RUN_MESSAGE_ID,
        text,
        sender=SYSTEM_SENDER,
        extra={"user_task_execution_pk": user_task_execution_pk},
        mode="form",
    )
    if stored is None:  # nothing was stored: never silently, an execution's session is a form
        raise RuntimeError(f"session {execution.session_id} of an execution is not a form")
    return {"success": "ok"}


def set_title(user_id: str, user_task_execution_pk: int, title: str) -> dict[str, Any]:
    """The user's own title for an execution (and its session, as the chat list shows it)."""
    _update_with_its_session(user_id, user_task_execution_pk, title=title)
    return {"success": True}


def produced_text_version(
    user_id: str, user_task_execution_pk: int, version_index: int
) -> dict[str, Any]:
    """Version `version_index` (1 = the first) of the execution's produced text."""
    owned_execution(user_id, user_task_execution_pk)
    row = db.session.execute(
        select(ProducedText, ProducedTextVersion)
        .join(
            ProducedTextVersion,
            ProducedTextVersion.produced_text_fk == ProducedText.produced_text_pk,
        )
        .where(
            ProducedText.user_task_execution_fk == user_task_execution_pk,
            ProducedText.deleted_at.is_(None),
            ProducedTextVersion.version_index == version_index,
        )
    ).first()
    if row is None:
        raise NotFound(f"This task execution has no produced text version {version_index}.")
    version = row.ProducedTextVersion
    return {
        "produced_text_pk": row.ProducedText.produced_text_pk,
        "produced_text_version_pk": version.produced_text_version_pk,
        "produced_text_version_index": version.version_index,
        "produced_text_title": version.title,
        "produced_text_production": version.production,
        "text_type": version.text_type,
    }
