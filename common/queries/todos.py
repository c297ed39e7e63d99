"""Statements on todos: the follow-up actions of task executions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.orm import Session as DbSession

from common.models import Todo, User, UserTask, UserTaskExecution

# Todos not deleted by the user.
_listed = Todo.deleted_by_user.is_(None)


def owned_todos(user_id: str) -> Select[Any]:
    """The user's todos (deleted ones included), through their executions."""
    return (
        select(Todo)
        .join(
            UserTaskExecution,
            UserTaskExecution.user_task_execution_pk == Todo.user_task_execution_fk,
        )
        .join(UserTask, UserTask.user_task_pk == UserTaskExecution.user_task_fk)
        .where(UserTask.user_id == user_id, UserTaskExecution.deleted_at.is_(None))
    )


def find_with_owner(db: DbSession, todo_pk: int) -> tuple[Todo, str] | None:
    """A todo not deleted (nor its execution), with its owner's user_id."""
    row = db.execute(
        select(Todo, UserTask.user_id)
        .join(
            UserTaskExecution,
            UserTaskExecution.user_task_execution_pk == Todo.user_task_execution_fk,
        )
        .join(UserTask, UserTask.user_task_pk == UserTaskExecution.user_task_fk)
        .where(Todo.todo_pk == todo_pk, _listed, UserTaskExecution.deleted_at.is_(None))
    ).first()
    return (row.Todo, row.user_id) if row else None


def list_for_execution(
    db: DbSession, user_id: str, user_task_execution_pk: int, limit: int, offset: int
) -> Sequence[Todo]:
    """Every todo of one execution, done or not, soonest due first."""
    return db.scalars(
        owned_todos(user_id)
        .where(Todo.user_task_execution_fk == user_task_execution_pk, _listed)
        .order_by(Todo.scheduled_date, Todo.todo_pk)
        .offset(offset)
        .limit(limit)
    ).all()


def list_upcoming(
    db: DbSession, user_id: str, today: date, limit: int, offset: int
) -> Sequence[Todo]:
    """The user's todos still to do, due today or later (the user's today), soonest first."""
    return db.scalars(
        owned_todos(user_id)
        .where(_listed, Todo.completed.is_(None), Todo.scheduled_date >= today)
        .order_by(Todo.scheduled_date, Todo.todo_pk)
        .offset(offset)
        .limit(limit)
    ).all()


def count_all(db: DbSession, user_id: str) -> int:
    """Every todo the user ever had, deleted or done ones included."""
    return db.scalar(select(func.count()).select_from(owned_todos(user_id).subquery())) or 0


def count_unread_upcoming(db: DbSession, user_id: str, today: date) -> int:
    query = owned_todos(user_id).where(
        _listed,
        Todo.completed.is_(None),
        Todo.read_by_user.is_(None),
        Todo.scheduled_date >= today,
    )
    return db.scalar(select(func.count()).select_from(query.subquery())) or 0


def counts_by_execution(db: DbSession, execution_pks: Sequence[int]) -> dict[int, tuple[int, int]]:
    """execution pk -> (todos, todos not read, done or deleted), for the executions given."""
    if not execution_pks:
        return {}
    rows = db.execute(
        select(
            Todo.user_task_execution_fk,
            func.count(),
            func.count().filter(Todo.read_by_user.is_(None), Todo.completed.is_(None)),
        )
        .where(Todo.user_task_execution_fk.in_(execution_pks), _listed)
        .group_by(Todo.user_task_execution_fk)
    ).all()
    return {row[0]: (row[1], row[2]) for row in rows}


def mark_execution_read(db: DbSession, user_task_execution_pk: int, now: datetime) -> None:
    db.execute(
        update(Todo)
        .where(
            Todo.user_task_execution_fk == user_task_execution_pk,
            _listed,
            Todo.read_by_user.is_(None),
        )
        .values(read_by_user=now)
    )


def claim_extraction(db: DbSession, user_task_execution_pk: int, now: datetime) -> bool:
    """Mark the execution's todos as extracted, unless they were (the caller commits, with
    the todos in the same transaction, so they are stored at most once)."""
    claimed = db.scalar(
        update(UserTaskExecution)
        .where(
            UserTaskExecution.user_task_execution_pk == user_task_execution_pk,
            UserTaskExecution.todos_extracted.is_(None),
        )
        .values(todos_extracted=now)
        .returning(UserTaskExecution.user_task_execution_pk)
    )
    return claimed is not None


def execution_owner(db: DbSession, user_task_execution_pk: int) -> User | None:
    return db.scalar(
        select(User)
        .join(UserTask, UserTask.user_id == User.user_id)
        .join(UserTaskExecution, UserTaskExecution.user_task_fk == UserTask.user_task_pk)
        .where(UserTaskExecution.user_task_execution_pk == user_task_execution_pk)
    )
