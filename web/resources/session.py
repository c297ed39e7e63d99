"""PUT/GET/DELETE /session."""

from __future__ import annotations

from flask_restful import Resource
from pydantic import Field

from web.auth import current_user_id, require_user
from web.services import sessions
from web.validation import MAX_PAGE_SIZE, InputModel, Offset, PageSize, use_input


class CreateSessionInput(InputModel):
    platform: str | None = Field(default=None, max_length=32)


class ListSessionsInput(InputModel):
    n_sessions: PageSize = MAX_PAGE_SIZE
    offset: Offset = 0


class DeleteSessionInput(InputModel):
    session_id: str = Field(min_length=1, max_length=64)


class SessionResource(Resource):
    method_decorators = [require_user]

    @use_input(CreateSessionInput, location="body")
    def put(self, data: CreateSessionInput):
        return sessions.create_session(current_user_id(), data.platform)

    @use_input(ListSessionsInput, location="query")
    def get(self, data: ListSessionsInput):
        return sessions.list_sessions(current_user_id(), data.n_sessions, data.offset)

    @use_input(DeleteSessionInput, location="query_or_body")
    def delete(self, data: DeleteSessionInput):
        return sessions.delete_session(current_user_id(), data.session_id)
