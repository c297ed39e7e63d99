"""Every error becomes `{"error": "<sentence>"}` with the right status, here.

Clients never see a stack trace or SQL; the log keeps the detail.
"""

from __future__ import annotations

import logging
from typing import Any

import kombu.exceptions
import redis.exceptions
from flask import Flask, jsonify
from flask_limiter.errors import RateLimitExceeded
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException

from common.errors import ApiError
from web.extensions import db
from web.ratelimit import retry_after_s

log = logging.getLogger(__name__)

HTTP_MESSAGES = {
    404: "No such route.",
    405: "Method not allowed on this route.",
    413: "Payload too large.",
    415: "Unsupported content type.",
}

DEPENDENCY_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    kombu.exceptions.OperationalError,
)


def _error(
    message: str,
    status: int,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
):
    response = jsonify({"error": message, **(extra or {})})
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def close_request_session() -> None:
    """End the request's database session, even when PostgreSQL closed its connection
    under it (a restart): the rollback then fails, after the request has its answer.
    That failure is logged, not turned into a 500 by the server (found by `make soak`);
    the pool replaces the connection at its next checkout."""
    try:
        db.session.remove()
    except DBAPIError as exc:
        if not (exc.connection_invalidated or isinstance(exc, OperationalError)):
            raise
        log.warning("database connection lost as a request ended: %s", str(exc).splitlines()[0])
        db.session.registry.clear()


def register_error_handlers(app: Flask) -> None:
    # Registered after Flask-SQLAlchemy's own teardown, so it runs before it (Flask runs
    # them in reverse), which then finds the session closed.
    app.teardown_appcontext(lambda exc: close_request_session())

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return _error(exc.message, exc.status, exc.headers, exc.extra)

    @app.errorhandler(RateLimitExceeded)
    def _rate_limited(exc: RateLimitExceeded):
        retry_after = retry_after_s(exc)
        return _error(
            f"Too many requests (limit: {exc.description}); retry in {retry_after} s.",
            429,
            {"Retry-After": str(retry_after)},
        )

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        status = exc.code or 500
        message = HTTP_MESSAGES.get(status) or exc.description or exc.name
        allow = {name: value for name, value in exc.get_headers() if name == "Allow"}
        return _error(message, status, allow)

    @app.errorhandler(OperationalError)
    def _database_down(exc: OperationalError):
        log.error("database unavailable: %s", exc)
        return _error("The database is unavailable; try again shortly.", 503)

    @app.errorhandler(DBAPIError)
    def _database_error(exc: DBAPIError):
        if exc.connection_invalidated:
            log.error("database connection lost: %s", exc)
            return _error("The database is unavailable; try again shortly.", 503)
        log.exception("database error")
        return _error("Internal error.", 500)

    for error_type in DEPENDENCY_ERRORS:

        @app.errorhandler(error_type)
        def _broker_down(exc: Exception):
            log.error("redis/broker unavailable: %s", exc)
            return _error("The message broker is unavailable; try again shortly.", 503)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error")
        return _error("Internal error.", 500)
