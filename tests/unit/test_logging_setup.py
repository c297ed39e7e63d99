"""The log line formats (LOG_FORMAT): the bound ids on every line, text or JSON."""

from __future__ import annotations

import io
import json
import logging

import pytest

from common.logging_setup import ContextFilter, log_context, make_formatter


@pytest.fixture
def capture():
    """A logger writing through the project's filter and a formatter of the test's choice."""
    stream = io.StringIO()
    logger = logging.getLogger("system1.test.logging_setup")
    logger.propagate = False
    logger.setLevel(logging.INFO)

    def _use(log_format: str) -> logging.Logger:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(make_formatter(log_format))
        handler.addFilter(ContextFilter())
        logger.handlers = [handler]
        return logger

    yield _use, stream
    logger.handlers = []


def test_text_lines_show_the_bound_ids(capture):
    use, stream = capture
    logger = use("text")

    with log_context(request_id="req-1", session_id="sess-1"):
        logger.info("turn %s queued", 7)

    line = stream.getvalue().rstrip()
    assert line.endswith(
        "INFO system1.test.logging_setup [request_id=req-1 session_id=sess-1]: turn 7 queued"
    )


def test_json_lines_carry_the_bound_ids_and_leave_out_unknown_ones(capture):
    use, stream = capture
    logger = use("json")

    with log_context(session_id="sess-2"):
        logger.warning("resend %s", 3, extra={"attempt": 2})
    logger.info("outside")

    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "resend 3"
    assert first["level"] == "WARNING"
    assert first["logger"] == "system1.test.logging_setup"
    assert first["session_id"] == "sess-2"
    assert first["attempt"] == 2
    assert "request_id" not in first and "task_id" not in first
    assert "session_id" not in second
