"""POST /user_task_execution_title: the user renames a task execution."""

from __future__ import annotations

from flask_restful import Resource
from pydantic import Field

from web.auth import current_user_id, require_user
from web.openapi import OutputModel, responds
from web.services import user_tasks
from web.validation import InputModel, use_input


class SetTitleInput(InputModel):
    user_task_execution_pk: int
    title: str = Field(min_length=1, max_length=255)


class TitleSet(OutputModel):
    success: bool


class UserTaskExecutionTitleResource(Resource):
    method_decorators = [require_user]

    @responds(TitleSet)
    @use_input(SetTitleInput, location="body")
    def post(self, data: SetTitleInput):
        """Set a task execution's title (and its session's)."""
        return user_tasks.set_title(current_user_id(), data.user_task_execution_pk, data.title)
