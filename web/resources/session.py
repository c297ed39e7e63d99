"""PUT/GET/DELETE /session."""

from __future__ import annotations

from flask_restful import Resource
from pydantic import Field

from web.auth import current_user_id, require_user
from web.openapi import OutputModel, responds
from web.services import sessions
from web.validation import MAX_PAGE_SIZE, InputModel, Offset, PageSize, use_input


class CreateSessionInput(InputModel):
    platform: str | None = Field(default=None, max_length=32)


class ListSessionsInput(InputModel):
    n_sessions: PageSize = MAX_PAGE_SIZE
    offset: Offset = 0


class DeleteSessionInput(InputModel):
    session_id: str = Field(min_length=1, max_length=64)


class CreatedSession(OutputModel):
    session_id: str
    intro_done: bool


class SessionSummary(OutputModel):
    session_id: str
    title: str | None
    creation_date: str = Field(description="ISO 8601 with a UTC offset.")
    last_message_date: str | None


class SessionList(OutputModel):
    sessions: list[SessionSummary] = Field(description="Newest activity first.")


class DeletedSession(OutputModel):
    session_id: str


class SessionResource(Resource):
    method_decorators = [require_user]

    @responds(CreatedSession)
    @use_input(CreateSessionInput, location="body")
    def put(self, data: CreateSessionInput):
        """Start a chat session."""
        return sessions.create_session(current_user_id(), data.platform)

    @responds(SessionList)
    @use_input(ListSessionsInput, location="query")
    def get(self, data: ListSessionsInput):
        """The user's sessions that have a message, not deleted, newest first."""
        return sessions.list_sessions(current_user_id(), data.n_sessions, data.offset)

    @responds(DeletedSession)
    @use_input(DeleteSessionInput, location="query_or_body")
    def delete(self, data: DeleteSessionInput):
        """Delete a session (soft delete): it is no longer listed nor usable."""
        return sessions.delete_session(current_user_id(), data.session_id)
