"""GET /is_email_service_configured: asked by the Mojodex web app's server before
sign-in (to offer password reset by email), with its own secret."""

from __future__ import annotations

from flask_restful import Resource

from web.auth import require_webapp_secret
from web.openapi import OutputModel, responds
from web.validation import InputModel, use_input


class EmailServiceInput(InputModel):
    pass


class EmailServiceState(OutputModel):
    is_configured: bool


class EmailServiceResource(Resource):
    method_decorators = [require_webapp_secret]

    @responds(EmailServiceState)
    @use_input(EmailServiceInput, location="query")
    def get(self, data: EmailServiceInput):
        """Whether the backend sends emails: never (System1 has no email service)."""
        return {"is_configured": False}
