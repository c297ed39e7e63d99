"""GET/POST/DELETE /todos: the follow-up actions found in task executions' drafts."""

from __future__ import annotations

from flask_restful import Resource
from pydantic import Field

from web.auth import current_user_id, require_user
from web.openapi import OutputModel, responds
from web.services import todos
from web.validation import MAX_PAGE_SIZE, InputModel, Offset, PageSize, use_input


class ListTodosInput(InputModel):
    n_todos: PageSize = MAX_PAGE_SIZE
    offset: Offset = 0
    # Mojodex's name for it here (not user_task_execution_pk).
    user_task_execution_fk: int | None = None


class MarkTodoInput(InputModel):
    mark_as_read: bool = False
    mark_as_done: bool = False
    todo_pk: int | None = None
    user_task_execution_pk: int | None = None


class DeleteTodoInput(InputModel):
    todo_pk: int


class TodoOut(OutputModel):
    todo_pk: int
    user_task_execution_fk: int
    description: str
    scheduled_date: str = Field(description="The day it is due (YYYY-MM-DD), user's time zone.")
    completed: str | None
    creation_date: str
    read_by_user: str | None


class TodoList(OutputModel):
    todos: list[TodoOut] = Field(description="Soonest due first.")
    user_has_never_done_todo: bool = Field(description="The user never had a todo.")
    n_todos_not_read: int


class MarkedTodo(OutputModel):
    todo_pk: int | None = None
    user_task_execution_pk: int | None = None


class DeletedTodo(OutputModel):
    todo_pk: int


class TodosResource(Resource):
    method_decorators = [require_user]

    @responds(TodoList)
    @use_input(ListTodosInput, location="query")
    def get(self, data: ListTodosInput):
        """One execution's todos (user_task_execution_fk), else the ones still to do."""
        return todos.list_todos(
            current_user_id(), data.n_todos, data.offset, data.user_task_execution_fk
        )

    @responds(MarkedTodo)
    @use_input(MarkTodoInput, location="body")
    def post(self, data: MarkTodoInput):
        """Mark a todo done or read, or every todo of an execution read."""
        return todos.mark(
            current_user_id(),
            data.mark_as_read,
            data.mark_as_done,
            data.todo_pk,
            data.user_task_execution_pk,
        )

    @responds(DeletedTodo)
    @use_input(DeleteTodoInput, location="query_or_body")
    def delete(self, data: DeleteTodoInput):
        """Delete a todo (soft delete)."""
        return todos.delete(current_user_id(), data.todo_pk)
