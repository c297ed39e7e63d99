"""GET /user_task_execution_produced_text: one version of an execution's draft, by its
number (the Previous/Next buttons of the Mojodex web app)."""

from __future__ import annotations

from flask_restful import Resource
from pydantic import Field

from web.auth import current_user_id, require_user
from web.openapi import OutputModel, responds
from web.services import user_tasks
from web.validation import MAX_OFFSET, InputModel, use_input


class VersionByIndexInput(InputModel):
    user_task_execution_pk: int
    produced_text_version_index: int = Field(ge=1, le=MAX_OFFSET, description="1 = the first.")


class ProducedTextVersionOut(OutputModel):
    produced_text_pk: int
    produced_text_version_pk: int
    produced_text_version_index: int
    produced_text_title: str
    produced_text_production: str
    text_type: str


class UserTaskExecutionProducedTextResource(Resource):
    method_decorators = [require_user]

    @responds(ProducedTextVersionOut)
    @use_input(VersionByIndexInput, location="query")
    def get(self, data: VersionByIndexInput):
        """Version N of the execution's produced text; 404 if it has no such version."""
        return user_tasks.produced_text_version(
            current_user_id(), data.user_task_execution_pk, data.produced_text_version_index
        )
