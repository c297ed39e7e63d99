"""PUT /user_message: a user message in, an assistant turn started."""

from __future__ import annotations

from typing import Literal

from flask_restful import Resource
from pydantic import Field

from web.auth import current_user_id, require_user
from web.openapi import DAILY_LIMIT_REACHED, Error, OutputModel, responds
from web.ratelimit import rate_limited
from web.services import messages
from web.validation import InputModel, use_input


class UserMessageInput(InputModel):
    session_id: str = Field(min_length=1, max_length=64)
    message_id: str = Field(min_length=1, max_length=255)
    text: str = Field(min_length=1, max_length=20_000)
    origin: Literal["task", "home_chat"] | None = None
    user_task_execution_pk: int | None = None
    # Accepted for Mojodex clients; the server's clock dates messages.
    message_date: str | None = None


class StoredUserMessage(OutputModel):
    message_pk: int
    message_id: str = Field(description="The client's id of the message.")
    text: str
    user_task_execution_pk: int | None = None


class UserMessageResource(Resource):
    method_decorators = [require_user]

    @responds(StoredUserMessage)
    @responds(Error, 429, description=DAILY_LIMIT_REACHED)
    @rate_limited("message_rate_limit", per="user")
    @rate_limited("message_address_rate_limit", per="address")
    @use_input(UserMessageInput, location="body", forms=True)
    def put(self, data: UserMessageInput):
        """Send a user message: stored, then answered by the assistant over Socket.IO.

        The same message_id again returns the stored message and starts no second turn.
        """
        return messages.receive_user_message(
            current_user_id(), data.session_id, data.message_id, data.text
        )
