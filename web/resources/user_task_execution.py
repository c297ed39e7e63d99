"""PUT/GET/DELETE /user_task_execution and POST /user_task_execution_run."""

from __future__ import annotations

import json
from typing import Any

from flask_restful import Resource
from pydantic import AliasChoices, BaseModel, Field, RootModel, field_validator

from web.auth import current_user_id, require_user
from web.openapi import DAILY_LIMIT_REACHED, Error, OutputModel, responds
from web.services import user_tasks
from web.validation import MAX_PAGE_SIZE, InputModel, Offset, PageSize, use_input


class CreateExecutionInput(InputModel):
    user_task_pk: int


class ListExecutionsInput(InputModel):
    user_task_execution_pk: int | None = None
    n_user_task_executions: PageSize = MAX_PAGE_SIZE
    offset: Offset = 0
    search_filter: str | None = Field(default=None, max_length=200)
    # Mojodex's filter: user task pks separated by ";" ("3;7"); empty means all.
    user_task_pks: list[int] | None = Field(default=None, max_length=MAX_PAGE_SIZE)

    @field_validator("user_task_pks", mode="before")
    @classmethod
    def _semicolon_separated(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(";") if part.strip()] or None
        return value


class DeleteExecutionInput(InputModel):
    user_task_execution_pk: int


class TaskInputValue(BaseModel):
    input_name: str = Field(min_length=1, max_length=100)
    # Mojodex clients (its web app, its CLI) send `input_value`; `value` is accepted too.
    value: str = Field(max_length=20_000, validation_alias=AliasChoices("input_value", "value"))


class RunExecutionInput(InputModel):
    user_task_execution_pk: int
    inputs: list[TaskInputValue] = Field(default_factory=list, max_length=50)

    @field_validator("inputs", mode="before")
    @classmethod
    def _inputs_from_form(cls, value: Any) -> Any:
        # Mojodex clients send `inputs` as a JSON string inside a form.
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                raise ValueError("must be a JSON list of {input_name, input_value}") from None
        return value


class ExecutionInputField(OutputModel):
    input_name: str
    description_for_user: str
    placeholder: str
    type: str
    value: str | None


class CreatedExecution(OutputModel):
    user_task_execution_pk: int
    json_input: list[ExecutionInputField] = Field(description="The start form to fill in.")
    actions: list[dict[str, Any]]
    session_id: str
    intro_done: bool


class ExecutionSummary(OutputModel):
    user_task_execution_pk: int
    start_date: str | None = Field(description="ISO 8601 with a UTC offset.")
    end_date: str | None
    title: str | None
    summary: str | None
    session_id: str
    icon: str
    task_name: str
    task_type: str
    user_task_pk: int
    produced_text_pk: int | None
    produced_text_title: str | None
    produced_text_production: str | None
    produced_text_version_pk: int | None
    produced_text_version_index: int | None
    result_chat_enabled: bool = Field(description="Always true: the task page shows its chat.")
    n_todos: int
    n_not_read_todos: int
    working_on_todos: bool = Field(description="A draft exists and its todos are on their way.")
    step_executions: list[dict[str, Any]] = Field(description="Always empty (no workflows).")


class ExecutionList(OutputModel):
    user_task_executions: list[ExecutionSummary] = Field(description="Newest first.")


class ExecutionOrList(RootModel[ExecutionSummary | ExecutionList]):
    """One execution (user_task_execution_pk given), else a page of them."""


class DeletedExecution(OutputModel):
    user_task_execution_pk: int


class ExecutionStarted(OutputModel):
    success: str


class UserTaskExecutionResource(Resource):
    method_decorators = [require_user]

    @responds(CreatedExecution)
    @use_input(CreateExecutionInput, location="body")
    def put(self, data: CreateExecutionInput):
        """A new execution of a user task, with its own session and start form."""
        return user_tasks.create_execution(current_user_id(), data.user_task_pk)

    @responds(ExecutionOrList)
    @use_input(ListExecutionsInput, location="query")
    def get(self, data: ListExecutionsInput):
        """The user's started task executions (search_filter on title, summary, task;
        user_task_pks "3;7"), or one."""
        if data.user_task_execution_pk is not None:
            return user_tasks.get_execution(current_user_id(), data.user_task_execution_pk)
        return user_tasks.list_executions(
            current_user_id(),
            data.n_user_task_executions,
            data.offset,
            data.search_filter,
            data.user_task_pks,
        )

    @responds(DeletedExecution)
    @use_input(DeleteExecutionInput, location="query_or_body")
    def delete(self, data: DeleteExecutionInput):
        """Delete a task execution (soft delete), and its session."""
        return user_tasks.delete_execution(current_user_id(), data.user_task_execution_pk)


class UserTaskExecutionRunResource(Resource):
    method_decorators = [require_user]

    @responds(ExecutionStarted)
    @responds(Error, 429, description=DAILY_LIMIT_REACHED)
    @use_input(RunExecutionInput, location="body", forms=True)
    def post(self, data: RunExecutionInput):
        """Fill in the start form and start the task's first assistant turn."""
        return user_tasks.run_execution(
            current_user_id(),
            data.user_task_execution_pk,
            [item.model_dump() for item in data.inputs],
        )
