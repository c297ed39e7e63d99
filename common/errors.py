"""Typed errors: each carries the HTTP status a client should see.

Services raise these; the web layer maps them to `{"error": ...}` in one
place (web/errors.py). Workers use them for the same meaning.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error whose message is safe to show to the client.

    `extra` adds fields to the error's JSON body, `headers` headers to its answer.
    """

    status = 400

    def __init__(
        self,
        message: str,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.extra = extra or {}
        self.headers = headers or {}


class BadRequest(ApiError):
    status = 400


class Unauthorized(ApiError):
    status = 401


class Forbidden(ApiError):
    status = 403


class NotFound(ApiError):
    status = 404


class Conflict(ApiError):
    status = 409


class PayloadTooLarge(ApiError):
    status = 413


class UnsupportedMediaType(ApiError):
    status = 415


class Unprocessable(ApiError):
    status = 422


class TooManyRequests(ApiError):
    status = 429


class ServiceUnavailable(ApiError):
    status = 503
