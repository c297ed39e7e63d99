"""POST /timezone: the user's offset from UTC, as their browser reports it."""

from __future__ import annotations

from flask_restful import Resource
from pydantic import Field

from common.user_time import MAX_OFFSET_MINUTES
from web.auth import current_user_id, require_user
from web.openapi import OutputModel, responds
from web.services import users
from web.validation import InputModel, use_input


class SetTimezoneInput(InputModel):
    # The web app sends Date.getTimezoneOffset() as a string: "-120" in Paris in summer.
    timezone_offset: int = Field(
        ge=-MAX_OFFSET_MINUTES,
        le=MAX_OFFSET_MINUTES,
        description="Minutes to add to local time to get UTC (JavaScript's getTimezoneOffset).",
    )


class TimezoneUpdated(OutputModel):
    success: str


class TimezoneResource(Resource):
    method_decorators = [require_user]

    @responds(TimezoneUpdated)
    @use_input(SetTimezoneInput, location="body")
    def post(self, data: SetTimezoneInput):
        """Set the user's time zone: prompts and todos then date things in it."""
        return users.set_timezone(current_user_id(), data.timezone_offset)
