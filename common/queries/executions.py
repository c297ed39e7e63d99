"""Statements on task executions that background tasks (titles, todos) share."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.orm import Session as DbSession

from common.models import Task, UserTask, UserTaskExecution


def execution_with_task(db: DbSession, user_task_execution_pk: int) -> Row[Any] | None:
    """The execution, its task and its owner's id (`UserTaskExecution`, `Task`,
    `user_id`), or None for an unknown execution."""
    return db.execute(
        select(UserTaskExecution, Task, UserTask.user_id)
        .join(UserTask, UserTask.user_task_pk == UserTaskExecution.user_task_fk)
        .join(Task, Task.task_pk == UserTask.task_fk)
        .where(UserTaskExecution.user_task_execution_pk == user_task_execution_pk)
    ).first()
