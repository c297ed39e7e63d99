"""Authentication: JWTs with an expiry, read from the Authorization header
(raw token as Mojodex clients send it, or `Bearer <token>`)."""

from __future__ import annotations

import functools
import hmac
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from cachetools import TLRUCache
from flask import g, request
from sqlalchemy import select

from common.errors import Forbidden, Unauthorized
from common.models import User
from common.settings import get_settings
from web.extensions import db

ALGORITHM = "HS256"

# Tokens already checked (signature, expiry, and that their user exists), for a short
# while, so that a request does not pay a database round trip for them
# (docs/performance.md, "Verified tokens cache"). Users are never deleted while their
# tokens live, so a verdict may be reused briefly; an entry never outlives its
# token's `exp`. Per process, bounded (least recently used go first); only successes.
AUTH_CACHE_TTL_S = 30.0
AUTH_CACHE_MAX_ENTRIES = 10_000


def _valid_until(_token: str, verdict: tuple[str, float], now: float) -> float:
    return min(now + AUTH_CACHE_TTL_S, verdict[1])


# token -> (user id, exp); times are Unix timestamps, as a token's `exp`.
_verified_tokens: TLRUCache[str, tuple[str, float]] = TLRUCache(
    maxsize=AUTH_CACHE_MAX_ENTRIES, ttu=_valid_until, timer=time.time
)


def issue_token(user_id: str) -> str:
    settings = get_settings()
    now = datetime.now(UTC)
    claims = {"sub": user_id, "iat": now, "exp": now + timedelta(seconds=settings.jwt_expiry_s)}
    return jwt.encode(claims, settings.jwt_secret, algorithm=ALGORITHM)


def _bare_token(token: str | None) -> str:
    if not token:
        raise Unauthorized("Missing token: send it in the Authorization header.")
    if token.lower().startswith("bearer "):
        token = token[7:].strip()
    return token


def _decode(token: str) -> tuple[str, float]:
    """(user id, exp as a timestamp) of a token; Unauthorized if invalid or expired."""
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
    return user_id, float(claims["exp"])


def authenticated_user_id(token: str | None) -> str:
    """The id of an existing user the token was issued for; Unauthorized if the
    token is bad or the user no longer exists."""
    token = _bare_token(token)
    cached = _verified_tokens.get(token)
    if cached is not None:
        return cached[0]
    user_id, expires_at = _decode(token)
    # Core, not an ORM get: only the existence of the row matters.
    if db.session.scalar(select(User.user_id).where(User.user_id == user_id)) is None:
        raise Unauthorized("Unknown user: log in again.")
    _verified_tokens[token] = (user_id, expires_at)
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


def require_user_or_backoffice(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Resource method decorator: a user token (`g.user_id`), or the backoffice secret
    (`g.backoffice` set, no user)."""

    @functools.wraps(handler)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        secret = get_settings().backoffice_secret
        given = request.headers.get("Authorization", "")
        if secret and hmac.compare_digest(given.encode(), secret.encode()):
            g.backoffice = True
        else:
            g.user_id = authenticated_user_id(given)
        return handler(*args, **kwargs)

    wrapper.requires_user = True  # type: ignore[attr-defined]
    wrapper.requires_backoffice = True  # type: ignore[attr-defined]
    return wrapper


def require_webapp_secret(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Resource method decorator: the Authorization header must carry the secret the
    Mojodex web app's server sends for calls made before anyone logs in
    (MOJODEX_WEBAPP_SECRET, as Mojodex names it on both sides)."""

    @functools.wraps(handler)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        secret = get_settings().mojodex_webapp_secret
        if not secret:
            raise Forbidden("This route is disabled: set MOJODEX_WEBAPP_SECRET.")
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), secret.encode()):
            raise Unauthorized("Invalid web app secret.")
        return handler(*args, **kwargs)

    wrapper.requires_webapp_secret = True  # type: ignore[attr-defined]
    return wrapper


def current_user_id() -> str:
    return g.user_id
