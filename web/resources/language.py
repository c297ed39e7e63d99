"""POST /language (the user's language) and GET /language (the languages to pick from)."""

from __future__ import annotations

from flask_restful import Resource
from pydantic import Field

from web.auth import current_user_id, require_user
from web.openapi import OutputModel, responds
from web.services import users
from web.validation import InputModel, use_input

# "en", "fr", "pt-BR", "zh-Hant": what browsers and Next.js locales send.
LANGUAGE_CODE = r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})?$"


class SetLanguageInput(InputModel):
    language_code: str = Field(pattern=LANGUAGE_CODE, max_length=16)


class AvailableLanguagesInput(InputModel):
    language_code: str | None = Field(default=None, max_length=16)


class LanguageUpdated(OutputModel):
    success: str


class AvailableLanguages(OutputModel):
    available_languages: dict[str, str] = Field(description="Language code -> its name.")


class LanguageResource(Resource):
    # Reading the list needs no login (the web app asks before sign-in, as with Mojodex).
    method_decorators = {"post": [require_user]}

    @responds(LanguageUpdated)
    @use_input(SetLanguageInput, location="body")
    def post(self, data: SetLanguageInput):
        """Set the language the assistant answers the user in."""
        return users.set_language(current_user_id(), data.language_code)

    @responds(AvailableLanguages)
    @use_input(AvailableLanguagesInput, location="query")
    def get(self, data: AvailableLanguagesInput):
        """The languages a user may pick (no translation files: the web app has its own)."""
        return users.available_languages()
