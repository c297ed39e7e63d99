"""Rate limits (flask-limiter), counted in Redis and shared by every web node.

A route declares its limits next to its handler with `@rate_limited(...)`;
the values are settings, read at request time. A client over a limit gets a
429 `{"error": ...}` with a Retry-After header, from the app's single error
mapping (web/errors.py).

If Redis cannot be reached, the limiter fails open: it logs the problem and
counts in the node's own memory until Redis is back (`in_memory_fallback_enabled`,
`swallow_errors`), so a Redis outage never turns requests into errors.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, g, request
from flask_limiter import Limiter
from flask_limiter.errors import RateLimitExceeded
from werkzeug.exceptions import HTTPException

from common.errors import ApiError
from common.settings import Settings, get_settings
from web.validation import request_fields

log = logging.getLogger(__name__)

# Redis must answer the limiter quickly, or the limiter gives up and fails open.
STORAGE_TIMEOUT_S = 1.0


def address_key() -> str:
    """The client's address (behind a proxy, the proxy must set remote_addr)."""
    return request.remote_addr or "unknown-address"


def user_key() -> str:
    """The authenticated user, when the handler's `require_user` has run;
    else the client's address."""
    user_id = g.get("user_id")
    return f"user:{user_id}" if user_id else address_key()


def login_email_key() -> str:
    """The email a login tries (hashed: no personal data in Redis keys)."""
    try:
        email = request_fields("body").get("email")
    except (ApiError, HTTPException):
        # A body the handler will refuse anyway (413, 415, not JSON). A key
        # function must not raise: the limiter would take it for Redis being down.
        email = None
    if not isinstance(email, str):
        email = ""
    digest = hashlib.sha256(email.strip().lower().encode("utf-8", "replace")).hexdigest()
    return f"email:{digest[:32]}"


KEYS: dict[str, Callable[[], str]] = {
    "address": address_key,
    "user": user_key,
    "login_email": login_email_key,
}

limiter = Limiter(
    key_func=address_key,
    key_prefix="system1",
    strategy="fixed-window",
    headers_enabled=False,  # Retry-After is set by web/errors.py
    swallow_errors=True,
    in_memory_fallback_enabled=True,
)


def rate_limited(setting: str, per: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Limit a Resource method by the value of `setting` (a Settings field
    name, e.g. "login_rate_limit"), counted per `per` ("address", "user" or
    "login_email"). Stack several for several limits. An empty setting is no limit.
    """
    if setting not in Settings.model_fields:
        raise ValueError(f"unknown setting {setting!r}")
    key = KEYS[per]

    def value() -> str:
        return getattr(get_settings(), setting) or "1000000/second"

    def exempt() -> bool:
        return not getattr(get_settings(), setting)

    def decorator(handler: Callable[..., Any]) -> Callable[..., Any]:
        limited = limiter.limit(value, key_func=key, scope=f"{setting}:{per}", exempt_when=exempt)(
            handler
        )
        limited.rate_limited = True  # type: ignore[attr-defined]  # read by the OpenAPI builder
        return limited

    return decorator


def init_rate_limits(app: Flask) -> None:
    app.config.update(
        RATELIMIT_STORAGE_URI=get_settings().redis_url,
        RATELIMIT_STORAGE_OPTIONS={
            "socket_connect_timeout": STORAGE_TIMEOUT_S,
            "socket_timeout": STORAGE_TIMEOUT_S,
        },
    )
    limiter.init_app(app)


def retry_after_s(exc: RateLimitExceeded) -> int:
    """Whole seconds until the breached limit's window resets: at least 1, at
    most the window's length."""
    window_s = max(1, int(exc.limit.limit.get_expiry()))
    try:
        current = limiter.current_limit
        if current is not None and current.breached:
            return max(1, min(window_s, math.ceil(current.reset_at - time.time())))
    except Exception as error:  # storage trouble: fall back on the window length
        log.warning("rate limit window unavailable: %s", error)
    return window_s
