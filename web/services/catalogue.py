"""The task catalogue: loading task definitions and enabling them for users."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import literal, select
from sqlalchemy.dialects.postgresql import insert

from common.errors import BadRequest, Conflict, NotFound
from common.models import Task, User, UserTask
from web.extensions import db

DEFAULT_CATALOGUE = Path(__file__).resolve().parent.parent / "catalogue" / "default_tasks.yaml"


class InfoToExtract(BaseModel):
    model_config = ConfigDict(extra="forbid")
    info_name: str = Field(min_length=1, max_length=100)
    description: str = Field(min_length=1, max_length=1000)


class TaskInput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input_name: str = Field(min_length=1, max_length=100)
    description_for_user: str = Field(min_length=1, max_length=1000)
    placeholder: str = Field(default="", max_length=1000)
    type: str = Field(default="text_area", max_length=32)


class TaskDefinition(BaseModel):
    """A catalogue entry as written in a catalogue file or sent to PUT /task."""

    model_config = ConfigDict(extra="forbid")
    name_for_system: str = Field(min_length=1, max_length=100, pattern=r"^[a-z0-9_]+$")
    name: str = Field(min_length=1, max_length=255)
    description: str = Field(min_length=1, max_length=2000)
    icon: str = Field(default="📝", max_length=32)
    definition_for_system: str = Field(min_length=1, max_length=10_000)
    infos_to_extract: list[InfoToExtract] = Field(default_factory=list, max_length=50)
    inputs: list[TaskInput] = Field(default_factory=list, max_length=50)
    final_instruction: str = Field(default="", max_length=5000)
    output_format: str = Field(default="", max_length=5000)
    output_text_type: str = Field(default="document", max_length=64)
    default_enabled: bool = True


def task_payload(task: Task) -> dict[str, Any]:
    return {
        "task_pk": task.task_pk,
        **TaskDefinition.model_validate(task, from_attributes=True).model_dump(),
    }


def read_catalogue_file(path: Path) -> list[TaskDefinition]:
    """Task definitions from a JSON or YAML file (a list of tasks)."""
    text = path.read_text(encoding="utf-8")
    entries = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    if not isinstance(entries, list):
        raise BadRequest(f"{path}: a catalogue file holds a list of tasks.")
    return [TaskDefinition.model_validate(entry) for entry in entries]


def upsert_task(definition: TaskDefinition) -> Task:
    """Create the task, or update the one with the same name_for_system."""
    values = definition.model_dump()
    task_pk = db.session.scalar(
        insert(Task)
        .values(**values)
        .on_conflict_do_update(index_elements=[Task.name_for_system], set_=values)
        .returning(Task.task_pk)
    )
    _enable_for_everyone(task_pk, definition.default_enabled)
    return db.session.get(Task, task_pk)


def _enable_for_everyone(task_pk: int, default_enabled: bool) -> None:
    if not default_enabled:
        return
    user_ids = select(User.user_id, literal(task_pk), literal(True))
    db.session.execute(
        insert(UserTask)
        .from_select(["user_id", "task_fk", "enabled"], user_ids)
        .on_conflict_do_nothing(index_elements=[UserTask.user_id, UserTask.task_fk])
    )


def load_catalogue(path: Path = DEFAULT_CATALOGUE) -> list[Task]:
    """Load a catalogue file in one transaction."""
    tasks = [upsert_task(definition) for definition in read_catalogue_file(path)]
    db.session.commit()
    return tasks


def enable_default_tasks(user_id: str) -> None:
    """Give a new user every task of the catalogue marked default_enabled."""
    defaults = select(literal(user_id), Task.task_pk, literal(True)).where(
        Task.default_enabled.is_(True)
    )
    db.session.execute(
        insert(UserTask)
        .from_select(["user_id", "task_fk", "enabled"], defaults)
        .on_conflict_do_nothing(index_elements=[UserTask.user_id, UserTask.task_fk])
    )


def list_tasks() -> dict[str, Any]:
    tasks = db.session.scalars(select(Task).order_by(Task.task_pk)).all()
    return {"tasks": [task_payload(task) for task in tasks]}


def get_task(task_pk: int) -> dict[str, Any]:
    task = db.session.get(Task, task_pk)
    if task is None:
        raise NotFound(f"Unknown task_pk {task_pk}.")
    return task_payload(task)


def create_task(definition: TaskDefinition) -> dict[str, Any]:
    if db.session.scalar(select(Task).where(Task.name_for_system == definition.name_for_system)):
        raise Conflict(f"A task named '{definition.name_for_system}' already exists.")
    task = upsert_task(definition)
    db.session.commit()
    return task_payload(task)


def update_task(task_pk: int, definition: TaskDefinition) -> dict[str, Any]:
    task = db.session.get(Task, task_pk)
    if task is None:
        raise NotFound(f"Unknown task_pk {task_pk}.")
    clash = db.session.scalar(
        select(Task.task_pk).where(
            Task.name_for_system == definition.name_for_system, Task.task_pk != task_pk
        )
    )
    if clash is not None:
        raise Conflict(f"A task named '{definition.name_for_system}' already exists.")
    for field, value in definition.model_dump().items():
        setattr(task, field, value)
    _enable_for_everyone(task_pk, definition.default_enabled)
    db.session.commit()
    return task_payload(task)
