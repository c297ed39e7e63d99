"""Authentication: JWTs with an expiry, read from the Authorization header
(raw token as Mojodex clients send it, or `Bearer <token>`)."""

from __future__ import annotations

import functools
import hmac
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from flask import g, request

from common.errors import Forbidden, Unauthorized
from common.models import User
from common.settings import get_settings
from web.extensions import db

ALGORITHM = "HS256"


def issue_token(user_id: str) -> str:
    settings = get_settings()
    now = datetime.now(UTC)
    claims = {"sub": user_id, "iat": now, "exp": now + timedelta(seconds=settings.jwt_expiry_s)}
    return jwt.encode(claims, settings.jwt_secret, algorithm=ALGORITHM)


def user_id_from_token(token: str | None) -> str:
    """The user id a token was issued for; Unauthorized if absent, invalid or expired."""
    if not token:
        raise Unauthorized("Missing token: send it in the Authorization header.")
    if token.lower().startswith("bearer "):
        token = token[7:].strip()
    try:
        claims = jwt.decode(
            token, get_settings().jwt_secret, algorithms=[ALGORITHM], options={"require": ["exp"]}
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("Token expired: log in again.") from None
    except jwt.InvalidTokenError:
        raise Unauthorized("Invalid token.") from None
    user_id = claims.get("sub")
    if not isinstance(user_id, str):
        raise Unauthorized("Invalid token.")
    return user_id


def authenticated_user_id(token: str | None) -> str:
    """The id of an existing user the token was issued for; Unauthorized if the
    token is bad or the user no longer exists."""
    user_id = user_id_from_token(token)
    if db.session.get(User, user_id) is None:
        raise Unauthorized("Unknown user: log in again.")
    return user_id


def require_user(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Resource method decorator: the request must carry a valid token."""

    @functools.wraps(handler)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        g.user_id = authenticated_user_id(request.headers.get("Authorization"))
        return handler(*args, **kwargs)

    wrapper.requires_user = True  # type: ignore[attr-defined]
    return wrapper


def require_backoffice(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Resource method decorator: the Authorization header must carry the
    backoffice secret (as Mojodex's backoffice sends it), not a user token."""

    @functools.wraps(handler)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        secret = get_settings().backoffice_secret
        if not secret:
            raise Forbidden("The backoffice is disabled: set BACKOFFICE_SECRET.")
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), secret.encode()):
            raise Unauthorized("Invalid backoffice secret.")
        return handler(*args, **kwargs)

    wrapper.requires_backoffice = True  # type: ignore[attr-defined]
    return wrapper


def current_user_id() -> str:
    return g.user_id
