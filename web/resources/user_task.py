"""GET /user_task: the tasks available to the user."""

from __future__ import annotations

from flask_restful import Resource
from pydantic import RootModel

from web.auth import current_user_id, require_user
from web.openapi import OutputModel, responds
from web.services import user_tasks
from web.validation import MAX_PAGE_SIZE, InputModel, Offset, PageSize, use_input


class ListUserTasksInput(InputModel):
    user_task_pk: int | None = None
    n_user_tasks: PageSize = MAX_PAGE_SIZE
    offset: Offset = 0


class UserTaskSummary(OutputModel):
    user_task_pk: int
    task_pk: int
    task_name: str
    task_description: str
    task_icon: str
    task_type: str
    enabled: bool


class UserTaskList(OutputModel):
    user_tasks: list[UserTaskSummary]


class UserTaskOrList(RootModel[UserTaskSummary | UserTaskList]):
    """One user task (user_task_pk given), else a page of them."""


class UserTaskResource(Resource):
    method_decorators = [require_user]

    @responds(UserTaskOrList)
    @use_input(ListUserTasksInput, location="query")
    def get(self, data: ListUserTasksInput):
        """The tasks available to the user, or one of them (user_task_pk)."""
        if data.user_task_pk is not None:
            return user_tasks.get_user_task(current_user_id(), data.user_task_pk)
        return user_tasks.list_user_tasks(current_user_id(), data.n_user_tasks, data.offset)
