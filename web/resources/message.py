"""GET /message: a session's history, paginated."""

from __future__ import annotations

from typing import Literal

from flask_restful import Resource
from pydantic import Field

from web.auth import current_user_id, require_user
from web.services import messages
from web.validation import MAX_PAGE_SIZE, InputModel, Offset, PageSize, use_input


class ListMessagesInput(InputModel):
    session_id: str = Field(min_length=1, max_length=64)
    n_messages: PageSize = MAX_PAGE_SIZE
    offset: Offset = 0
    offset_direction: Literal["older", "newer"] = "older"
    user_task_execution_pk: int | None = None


class MessageResource(Resource):
    method_decorators = [require_user]

    @use_input(ListMessagesInput, location="query")
    def get(self, data: ListMessagesInput):
        return messages.list_messages(
            current_user_id(), data.session_id, data.n_messages, data.offset, data.offset_direction
        )
