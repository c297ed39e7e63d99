"""GET/PUT /onboarding: whether the user has seen the onboarding (the Mojodex web app
asks on every sign-in)."""

from __future__ import annotations

from flask_restful import Resource

from web.auth import current_user_id, require_user
from web.openapi import OutputModel, responds
from web.services import users
from web.validation import InputModel, use_input


class OnboardingInput(InputModel):
    pass


class OnboardingState(OutputModel):
    onboarding_presented: bool


class OnboardingSeen(OutputModel):
    user_id: str


class OnboardingResource(Resource):
    method_decorators = [require_user]

    @responds(OnboardingState)
    @use_input(OnboardingInput, location="query")
    def get(self, data: OnboardingInput):
        """Whether the user was onboarded: always, as System1 has no onboarding content."""
        return users.onboarding_state(current_user_id())

    @responds(OnboardingSeen)
    @use_input(OnboardingInput, location="body")
    def put(self, data: OnboardingInput):
        """The user saw the onboarding (nothing to store: there is none)."""
        users.onboarding_state(current_user_id())
        return {"user_id": current_user_id()}
