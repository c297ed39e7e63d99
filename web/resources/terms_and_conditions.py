"""PUT /terms_and_conditions: the user accepts the terms and conditions."""

from __future__ import annotations

from flask_restful import Resource

from web.auth import current_user_id, require_user
from web.openapi import OutputModel, responds
from web.services import users
from web.validation import InputModel, use_input


class AcceptTermsInput(InputModel):
    pass


class TermsAccepted(OutputModel):
    success: bool


class TermsAndConditionsResource(Resource):
    method_decorators = [require_user]

    @responds(TermsAccepted)
    @use_input(AcceptTermsInput, location="body")
    def put(self, data: AcceptTermsInput):
        """Accept the terms and conditions; login answers then say terms_and_conditions_agreed."""
        return users.accept_terms(current_user_id())
