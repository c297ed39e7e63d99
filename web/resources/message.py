"""GET /message: a session's history, paginated."""

from __future__ import annotations

from typing import Literal

from flask_restful import Resource
from pydantic import Field

from web.auth import current_user_id, require_user
from web.openapi import OutputModel, responds
from web.services import messages
from web.sockets.events import MessageUsage
from web.validation import MAX_PAGE_SIZE, InputModel, Offset, PageSize, use_input


class ListMessagesInput(InputModel):
    session_id: str = Field(min_length=1, max_length=64)
    n_messages: PageSize = MAX_PAGE_SIZE
    offset: Offset = 0
    offset_direction: Literal["older", "newer"] = "older"
    user_task_execution_pk: int | None = None


class MessageBody(OutputModel):
    message_pk: int
    text: str
    usage: MessageUsage | None = Field(default=None, description="Assistant messages: the cost.")
    stopped: Literal[True] | None = Field(
        default=None, description="Present (true) only on an answer the user stopped."
    )


class ListedMessage(OutputModel):
    message_pk: int
    sender: Literal["user", "mojo", "system"]
    message: MessageBody = Field(description="The stored message, as its event carried it.")
    audio: bool
    in_error_state: bool
    message_date: str = Field(description="ISO 8601 with a UTC offset.")


class MessageList(OutputModel):
    messages: list[ListedMessage] = Field(description="Newest first.")


class MessageResource(Resource):
    method_decorators = [require_user]

    @responds(MessageList)
    @use_input(ListMessagesInput, location="query")
    def get(self, data: ListMessagesInput):
        """A page of a session's messages, newest first (offset_direction picks the end)."""
        return messages.list_messages(
            current_user_id(),
            data.session_id,
            data.n_messages,
            data.offset,
            data.offset_direction,
            data.user_task_execution_pk,
        )
