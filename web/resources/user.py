"""PUT /user (register) and POST /user (login)."""

from __future__ import annotations

from typing import Literal

from flask_restful import Resource
from pydantic import Field

from web.openapi import Error, OutputModel, responds
from web.ratelimit import rate_limited
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


class UserToken(OutputModel):
    token: str = Field(description="The JWT to send in the Authorization header.")
    user_id: str
    name: str
    language_code: str | None
    terms_and_conditions_agreed: bool
    company_fk: int | None


class UserResource(Resource):
    @responds({200: UserToken, 409: Error})
    @rate_limited("register_rate_limit", per="address")
    @use_input(RegisterInput, location="body")
    def put(self, data: RegisterInput):
        """Register: a new account, and its token. 409 if the email is taken."""
        return users.register(data.email, data.password, data.name, data.language_code)

    @responds(UserToken)
    @rate_limited("login_rate_limit", per="address")
    @rate_limited("login_rate_limit", per="login_email")
    @use_input(LoginInput, location="body")
    def post(self, data: LoginInput):
        """Log in: a token. A wrong email or password is one 400 for both."""
        return users.login(data.email, data.password)
