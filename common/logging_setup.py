"""Logging for every System1 process (web nodes, Celery workers, beat).

One handler on stderr, text for people or JSON for log shippers (LOG_FORMAT), and
every line carries the ids that let one turn be followed end to end:

- `request_id`: the HTTP request's X-Request-ID (given by the client or a proxy, or
  made up by the web node), echoed in the response;
- `session_id`: the session the request or task is about, when known;
- `task_id`, `task_name`: the Celery task running the code that logs.

The web node binds the request and session ids for the duration of a request
(web/request_context.py). Tasks published while they are bound (a turn queued by
`PUT /user_message`, a resend scheduled by a turn) carry them in their message
headers, so a worker's lines for that task carry the same ids as the request's.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from pythonjsonlogger.json import JsonFormatter

from common.settings import get_settings

# The fields a line may carry, in the order the text format shows them.
CONTEXT_FIELDS = ("request_id", "session_id", "task_id", "task_name")
# Celery message headers that carry the ids from the publisher to the task.
PROPAGATED_HEADERS = ("request_id", "session_id")

_request_id: ContextVar[str | None] = ContextVar("system1_request_id", default=None)
_session_id: ContextVar[str | None] = ContextVar("system1_session_id", default=None)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(context)s: %(message)s"
JSON_FIELDS = ("asctime", "levelname", "name", "process", "message")
JSON_RENAMES = {"asctime": "time", "levelname": "level", "name": "logger"}


def current_context() -> dict[str, str | None]:
    """The ids of what this thread or greenlet is doing now: bound ones first, then
    those of the running Celery task (its own id and the headers it was sent with)."""
    context: dict[str, str | None] = {
        "request_id": _request_id.get(),
        "session_id": _session_id.get(),
        "task_id": None,
        "task_name": None,
    }
    # Looked up, not imported: gunicorn's master loads this module before gevent patches
    # the worker, and a process that has not imported Celery runs no task.
    celery_state = sys.modules.get("celery._state")
    task = celery_state.get_current_task() if celery_state is not None else None
    if task is not None and task.request.id is not None:
        request = task.request
        context["task_id"] = request.id
        context["task_name"] = task.name
        for header in PROPAGATED_HEADERS:
            if context[header] is None:
                value = getattr(request, header, None)
                context[header] = value if isinstance(value, str) else None
    return context


def bind(request_id: str | None = None, session_id: str | None = None) -> None:
    """Bind ids to the current context (a web request's greenlet); None keeps a value."""
    if request_id is not None:
        _request_id.set(request_id)
    if session_id is not None:
        _session_id.set(session_id)


def clear() -> None:
    """Forget the bound ids (at the end of a web request)."""
    _request_id.set(None)
    _session_id.set(None)


@contextmanager
def log_context(request_id: str | None = None, session_id: str | None = None) -> Iterator[None]:
    """Bind ids for the lines logged inside the block, then restore the previous ones."""
    tokens = []
    if request_id is not None:
        tokens.append((_request_id, _request_id.set(request_id)))
    if session_id is not None:
        tokens.append((_session_id, _session_id.set(session_id)))
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class ContextFilter(logging.Filter):
    """Adds the context fields to each record (values given with `extra=` win)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in current_context().items():
            if getattr(record, name, None) is None:
                setattr(record, name, value)
        return True


class TextFormatter(logging.Formatter):
    """`time LEVEL logger [request_id=… session_id=… task_id=…]: message`."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        ids = [
            f"{name}={value}"
            for name in CONTEXT_FIELDS
            if (value := getattr(record, name, None)) is not None
        ]
        record.context = f" [{' '.join(ids)}]" if ids else ""
        return super().format(record)


class JsonLineFormatter(JsonFormatter):
    """One JSON object per line: time, level, logger, process, message, the ids
    that are known (no null ids) and any `extra=` fields."""

    def __init__(self) -> None:
        super().__init__(list(JSON_FIELDS), rename_fields=JSON_RENAMES, json_ensure_ascii=False)

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        for name in (*CONTEXT_FIELDS, "context"):
            if log_data.get(name) is None:
                log_data.pop(name, None)
        return log_data


def make_formatter(log_format: str | None = None) -> logging.Formatter:
    chosen = log_format or get_settings().log_format
    return JsonLineFormatter() if chosen == "json" else TextFormatter()


def make_handler(log_format: str | None = None) -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(make_formatter(log_format))
    handler.addFilter(ContextFilter())
    return handler


def configure_logging(level: str | int | None = None, log_format: str | None = None) -> None:
    """Send every logger's lines to one stderr handler in the configured format."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(make_handler(log_format))
    chosen = level if level is not None else get_settings().log_level
    root.setLevel(chosen.upper() if isinstance(chosen, str) else chosen)


def gunicorn_logconfig(log_format: str | None = None) -> dict[str, Any]:
    """gunicorn's `logconfig_dict`: its own lines in the same format, through the filter."""
    handler = {
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
        "formatter": "system1",
        "filters": ["context"],
    }
    chosen = log_format or get_settings().log_format
    formatter_class = JsonLineFormatter if chosen == "json" else TextFormatter
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"system1": {"()": formatter_class}},
        "filters": {"context": {"()": ContextFilter}},
        "handlers": {"console": handler},
        "loggers": {
            "gunicorn.error": {"handlers": ["console"], "propagate": False},
            # The app logs one line per request itself (web/request_context.py).
            "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
        },
    }


def _setup_celery_logging(loglevel: int | str | None = None, **_: Any) -> None:
    configure_logging(level=loglevel or None)


def _add_context_headers(headers: dict[str, Any] | None = None, **_: Any) -> None:
    """Carry the publisher's request and session ids to the task it publishes."""
    if headers is None:
        return
    context = current_context()
    for name in PROPAGATED_HEADERS:
        if context[name] is not None and name not in headers:
            headers[name] = context[name]


def install_celery_logging() -> None:
    """Workers and beat log through `configure_logging` (instead of Celery's own
    set-up), and published tasks carry the ids of their publisher."""
    from celery import signals

    signals.setup_logging.connect(_setup_celery_logging, weak=False)
    signals.before_task_publish.connect(_add_context_headers, weak=False)
