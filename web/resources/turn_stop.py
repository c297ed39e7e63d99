"""POST /assistant_turn_stop: stop the assistant turn of a session."""

from __future__ import annotations

from flask_restful import Resource
from pydantic import Field

from web.auth import current_user_id, require_user
from web.openapi import Error, OutputModel, responds
from web.services import turn_stop
from web.validation import InputModel, use_input


class StopTurnInput(InputModel):
    session_id: str = Field(min_length=1, max_length=64)


class StoppedTurn(OutputModel):
    session_id: str
    message_pk: int | None = Field(
        description=(
            "The stopped answer (also sent as mojo_message with stopped: true), or the "
            "finished one if the stop crossed the turn's end; null if the turn had not "
            "ended within a few seconds (its stopped mojo_message follows)."
        )
    )


class TurnStopResource(Resource):
    method_decorators = [require_user]

    @responds({200: StoppedTurn, 409: Error})
    @use_input(StopTurnInput, location="body")
    def post(self, data: StopTurnInput):
        """Stop the assistant turn running or queued in a session (409 if there is none).

        The text streamed so far is stored as the answer, with stopped: true; a turn that
        had not started ends with an empty text.
        """
        return turn_stop.stop_turn(current_user_id(), data.session_id)
