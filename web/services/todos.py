"""Todos: listing the user's follow-up actions, marking them read or done, deleting them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from common.errors import BadRequest, Conflict, Forbidden, NotFound
from common.models import Todo, User
from common.queries import todos as todo_queries
from common.user_time import user_now
from web.extensions import db
from web.services.user_tasks import owned_execution


def _payload(todo: Todo) -> dict[str, Any]:
    return {
        "todo_pk": todo.todo_pk,
        "user_task_execution_fk": todo.user_task_execution_fk,
        "description": todo.description,
        "scheduled_date": todo.scheduled_date.isoformat(),
        "completed": todo.completed.isoformat() if todo.completed else None,
        "creation_date": todo.creation_date.isoformat(),
        "read_by_user": todo.read_by_user.isoformat() if todo.read_by_user else None,
    }


def list_todos(
    user_id: str, n_todos: int, offset: int, user_task_execution_pk: int | None
) -> dict[str, Any]:
    """One execution's todos (done ones included), or the user's todos still to do from
    today on (the user's today); with the counters the web app shows."""
    timezone_offset = db.session.scalar(select(User.timezone_offset).where(User.user_id == user_id))
    today = user_now(timezone_offset).date()
    if user_task_execution_pk is not None:
        owned_execution(user_id, user_task_execution_pk)
        todos = todo_queries.list_for_execution(
            db.session, user_id, user_task_execution_pk, n_todos, offset
        )
    else:
        todos = todo_queries.list_upcoming(db.session, user_id, today, n_todos, offset)
    return {
        "todos": [_payload(todo) for todo in todos],
        "user_has_never_done_todo": todo_queries.count_all(db.session, user_id) == 0,
        "n_todos_not_read": todo_queries.count_unread_upcoming(db.session, user_id, today),
    }


def _owned(user_id: str, todo_pk: int) -> Todo:
    """The todo if it exists, is not deleted and belongs to the user."""
    found = todo_queries.find_with_owner(db.session, todo_pk)
    if found is None:
        raise NotFound(f"Unknown todo_pk {todo_pk}.")
    todo, owner_id = found
    if owner_id != user_id:
        raise Forbidden("This todo belongs to another user.")
    return todo


def mark(
    user_id: str,
    mark_as_read: bool,
    mark_as_done: bool,
    todo_pk: int | None,
    user_task_execution_pk: int | None,
) -> dict[str, Any]:
    """Mark one todo read or done, or every todo of an execution read."""
    if mark_as_read == mark_as_done:
        raise BadRequest("Set exactly one of 'mark_as_read' and 'mark_as_done' to true.")
    now = datetime.now(UTC)
    if todo_pk is not None:
        todo = _owned(user_id, todo_pk)
        if mark_as_done:
            if todo.completed is not None:
                raise Conflict("This todo is done already.")
            todo.completed = now
        elif todo.read_by_user is None:
            todo.read_by_user = now
        db.session.commit()
        return {"todo_pk": todo_pk}
    if mark_as_done:
        raise BadRequest("Missing field 'todo_pk' (mark_as_done marks one todo).")
    if user_task_execution_pk is None:
        raise BadRequest("Missing field 'todo_pk' or 'user_task_execution_pk'.")
    owned_execution(user_id, user_task_execution_pk)
    todo_queries.mark_execution_read(db.session, user_task_execution_pk, now)
    db.session.commit()
    return {"user_task_execution_pk": user_task_execution_pk}


def delete(user_id: str, todo_pk: int) -> dict[str, Any]:
    _owned(user_id, todo_pk).deleted_by_user = datetime.now(UTC)
    db.session.commit()
    return {"todo_pk": todo_pk}
