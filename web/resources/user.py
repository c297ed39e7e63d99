"""PUT /user (register) and POST /user (login)."""

from __future__ import annotations

from typing import Literal

from flask_restful import Resource
from pydantic import Field

from web.services import users
from web.validation import InputModel, use_input


class RegisterInput(InputModel):
    email: str = Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    password: str = Field(min_length=8, max_length=256)
    name: str = Field(min_length=1, max_length=255)
    language_code: str | None = Field(default=None, max_length=16)


class LoginInput(InputModel):
    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=256)
    login_method: Literal["email_password"] = "email_password"


class UserResource(Resource):
    @use_input(RegisterInput, location="body")
    def put(self, data: RegisterInput):
        return users.register(data.email, data.password, data.name, data.language_code)

    @use_input(LoginInput, location="body")
    def post(self, data: LoginInput):
        return users.login(data.email, data.password)
