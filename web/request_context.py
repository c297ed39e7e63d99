"""The ids of each HTTP request, for the logs (common/logging_setup.py).

Every request gets a request id: the client's (or the proxy's) X-Request-ID when it
is a sensible token, else a new one; it is echoed in the response's X-Request-ID.
The session id is taken from the request (query string or JSON/form body) when it
names one. Both are bound for the request's log lines and travel in the headers of
the Celery tasks it queues. One line per request says how it went.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from flask import Flask, Response, g, request

from common import logging_setup

log = logging.getLogger("system1.http")

REQUEST_ID_HEADER = "X-Request-ID"
# Accepted as given: UUIDs, trace ids and the like. Anything else is replaced.
_REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_SESSION_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
# Polled often by load balancers and scrapers: their lines are DEBUG.
QUIET_PATHS = frozenset({"/health", "/metrics"})
FORM_TYPES = frozenset({"multipart/form-data", "application/x-www-form-urlencoded"})


def request_id_from(header_value: str | None) -> str:
    if header_value and _REQUEST_ID_PATTERN.match(header_value):
        return header_value
    return uuid.uuid4().hex


def _session_id_of_request() -> str | None:
    """The request's session_id, if it names a plausible one; never raises."""
    value: Any = request.args.get("session_id")
    try:
        if value is None and request.mimetype == "application/json":
            body = request.get_json(silent=True)
            value = body.get("session_id") if isinstance(body, dict) else None
        elif value is None and request.mimetype in FORM_TYPES:
            value = request.form.get("session_id")
    except Exception:  # a malformed or oversized body: the route itself will say so
        value = None
    return value if isinstance(value, str) and _SESSION_ID_PATTERN.match(value) else None


def init_request_context(app: Flask) -> None:
    @app.before_request
    def _bind_ids() -> None:
        g.request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
        g.request_started_at = time.perf_counter()
        logging_setup.clear()
        logging_setup.bind(request_id=g.request_id, session_id=_session_id_of_request())

    @app.after_request
    def _echo_and_log(response: Response) -> Response:
        request_id = g.get("request_id")
        if request_id is not None:
            response.headers[REQUEST_ID_HEADER] = request_id
        started = g.get("request_started_at")
        duration_ms = (time.perf_counter() - started) * 1000 if started is not None else 0.0
        level = logging.DEBUG if request.path in QUIET_PATHS else logging.INFO
        log.log(
            level,
            "%s %s %s %.1f ms",
            request.method,
            request.path,
            response.status_code,
            duration_ms,
            extra={
                "method": request.method,
                "path": request.path,
                "route": request.url_rule.rule if request.url_rule is not None else None,
                "status": response.status_code,
                "duration_ms": round(duration_ms, 1),
            },
        )
        return response

    @app.teardown_request
    def _unbind_ids(_exc: BaseException | None) -> None:
        logging_setup.clear()
