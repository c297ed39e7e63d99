"""GET/POST/DELETE /produced_text."""

from __future__ import annotations

from flask_restful import Resource
from pydantic import Field, RootModel

from web.auth import current_user_id, require_user
from web.openapi import OutputModel, responds
from web.services import produced_texts
from web.validation import MAX_PAGE_SIZE, InputModel, Offset, PageSize, use_input


class ListProducedTextsInput(InputModel):
    produced_text_pk: int | None = None
    n_produced_texts: PageSize = MAX_PAGE_SIZE
    offset: Offset = 0


class SaveProducedTextInput(InputModel):
    production: str = Field(max_length=100_000)
    title: str | None = Field(default=None, max_length=1000)
    produced_text_pk: int | None = None
    user_task_execution_pk: int | None = None
    session_id: str | None = Field(default=None, min_length=1, max_length=64)


class DeleteProducedTextInput(InputModel):
    produced_text_pk: int


class ProducedTextOut(OutputModel):
    produced_text_pk: int
    user_task_execution_fk: int | None
    user_id: str
    session_id: str | None
    production: str
    title: str
    text_type: str | None
    produced_text_version_pk: int | None
    produced_text_version_index: int | None
    creation_date: str = Field(description="ISO 8601 with a UTC offset.")


class ProducedTextList(OutputModel):
    produced_texts: list[ProducedTextOut] = Field(description="Newest first.")


class ProducedTextOrList(RootModel[ProducedTextOut | ProducedTextList]):
    """One produced text (produced_text_pk given), else a page of them."""


class SavedVersion(OutputModel):
    produced_text_pk: int
    produced_text_version_pk: int
    produced_text_version_index: int


class DeletedProducedText(OutputModel):
    produced_text_pk: int


class ProducedTextResource(Resource):
    method_decorators = [require_user]

    @responds(ProducedTextOrList)
    @use_input(ListProducedTextsInput, location="query")
    def get(self, data: ListProducedTextsInput):
        """The user's produced texts (latest version of each), or one of them."""
        if data.produced_text_pk is not None:
            return produced_texts.get_produced_text(current_user_id(), data.produced_text_pk)
        return produced_texts.list_produced_texts(
            current_user_id(), data.n_produced_texts, data.offset
        )

    @responds(SavedVersion)
    @use_input(SaveProducedTextInput, location="body")
    def post(self, data: SaveProducedTextInput):
        """The user's edit: a new version of the produced text it names, or a new one."""
        return produced_texts.save_user_version(
            current_user_id(),
            data.production,
            data.title,
            data.produced_text_pk,
            data.user_task_execution_pk,
            data.session_id,
        )

    @responds(DeletedProducedText)
    @use_input(DeleteProducedTextInput, location="query_or_body")
    def delete(self, data: DeleteProducedTextInput):
        """Delete a produced text (soft delete)."""
        return produced_texts.delete_produced_text(current_user_id(), data.produced_text_pk)
