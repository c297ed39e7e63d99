"""GET/PUT/POST /task: the task catalogue, for the backoffice (secret, not a user token)."""

from __future__ import annotations

from flask_restful import Resource
from pydantic import ConfigDict, RootModel

from web.auth import require_backoffice
from web.openapi import Error, OutputModel, responds
from web.services import catalogue
from web.services.catalogue import TaskDefinition
from web.validation import InputModel, use_input


class GetTaskInput(InputModel):
    task_pk: int | None = None


class CreateTaskInput(TaskDefinition):
    # Catalogue files forbid unknown keys (typos); clients may send extra fields.
    model_config = ConfigDict(extra="ignore")


class UpdateTaskInput(CreateTaskInput):
    task_pk: int


class CatalogueTask(TaskDefinition):
    model_config = ConfigDict(extra="allow")
    task_pk: int


class CatalogueTaskList(OutputModel):
    tasks: list[CatalogueTask]


class CatalogueTaskOrList(RootModel[CatalogueTask | CatalogueTaskList]):
    """One task (task_pk given), else the whole catalogue."""


class TaskResource(Resource):
    method_decorators = [require_backoffice]

    @responds(CatalogueTaskOrList)
    @use_input(GetTaskInput, location="query")
    def get(self, data: GetTaskInput):
        """The task catalogue, or one task (task_pk)."""
        if data.task_pk is not None:
            return catalogue.get_task(data.task_pk)
        return catalogue.list_tasks()

    @responds({200: CatalogueTask, 409: Error})
    @use_input(CreateTaskInput, location="body")
    def put(self, data: CreateTaskInput):
        """Add a task to the catalogue (409 if its name_for_system is taken)."""
        return catalogue.create_task(TaskDefinition.model_validate(data.model_dump()))

    @responds({200: CatalogueTask, 409: Error})
    @use_input(UpdateTaskInput, location="body")
    def post(self, data: UpdateTaskInput):
        """Replace a task's definition (409 if its name_for_system is taken)."""
        definition = TaskDefinition.model_validate(data.model_dump(exclude={"task_pk"}))
        return catalogue.update_task(data.task_pk, definition)
