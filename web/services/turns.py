"""Handing an assistant turn to the Celery workers, by task name: the web node imports
no task code."""

from __future__ import annotations

from common.celery.app import celery_app
from common.celery.task_names import ASSISTANT_TURN_TASK

# The web request waits for the broker at most this long before answering 503.
PUBLISH_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2}


def enqueue_assistant_turn(user_message_pk: int) -> None:
    """Queue the turn that answers a stored user message (by id, never by object)."""
    celery_app.send_task(
        ASSISTANT_TURN_TASK,
        args=[user_message_pk],
        retry=True,
        retry_policy=PUBLISH_RETRY_POLICY,
    )
